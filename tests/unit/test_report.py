"""The pull-request report: AUCs judged against their noise, params, folded timings, figures.

The rule under test (report.noise.NOISE_RULE): a Δ is bold only outside the noise, by a paired bootstrap
when both revisions' predictions are at hand, else by non-overlapping 95% intervals; a stage with
the same inputs in both revisions moved by the machine alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.project import env, git
from PIL import Image

from moviegenre.branches.registry import NAMES
from moviegenre.cli.report.machines import CPU_MARK, Machine, cpu_dependent, difference, machine_notes
from moviegenre.cli.report.markdown import delta_cell
from moviegenre.cli.report.noise import judge, machine_only
from moviegenre.cli.report.revisions import stage_inputs
from moviegenre.cli.report.scores import Score, branch_names
from moviegenre.evaluation.metrics import macro_auc_ranks
from moviegenre.evaluation.paired_bootstrap import paired_delta_interval, weighted_macro_auc

GENRES = ["Drama", "Comedy", "Horror", "Action"]


# --- the noise rule, unit by unit ---------------------------------------------------------------


def test_a_noise_sized_change_is_marked_as_noise_and_not_bold() -> None:
    # image_dl, same code on another machine: +0.011 with intervals 0.04 wide
    verdict = judge(Score(0.682929, (0.6626, 0.7052)), Score(0.693929, (0.6731, 0.7153)), None, None)
    assert verdict.kind == "noise" and verdict.method == "95% intervals"
    assert delta_cell(verdict) == "+0.0110 within noise"


def test_a_real_change_is_bold() -> None:
    verdict = judge(Score(0.80, (0.78, 0.82)), Score(0.86, (0.845, 0.875)), None, None)
    assert verdict.kind == "real"
    assert delta_cell(verdict) == "**+0.0600** outside noise"


def test_the_paired_bootstrap_decides_when_both_predictions_are_at_hand() -> None:
    base, head = Score(0.90, (0.88, 0.92)), Score(0.91, (0.89, 0.93))  # intervals overlap
    assert judge(base, head, None, (0.004, 0.016)).kind == "real"  # but the paired Δ excludes 0
    assert judge(base, head, None, (-0.002, 0.021)).kind == "noise"
    assert judge(base, head, None, (0.004, 0.016)).method == "paired bootstrap"


class _LockTree:
    """A revision holding only a dvc.lock."""

    def __init__(self, stages: dict) -> None:
        self.raw = yaml.safe_dump({"schema": "2.0", "stages": stages}).encode()

    def read(self, path: str) -> bytes | None:
        return self.raw if path == "dvc.lock" else None


def _two_stage_lock(code: str = "c1", features: str = "f1", predictions: str = "p1") -> dict:
    """featurize_images -> train@image_ml, with the hashes given."""
    return {
        "featurize_images": {
            "cmd": "python stages/featurize_images.py",
            "deps": [{"path": "data/raw", "md5": "raw1"}, {"path": "src/moviegenre/features", "md5": code}],
            "params": {"params.yaml": {"images": {"pca_components": 40}}},
            "outs": [{"path": "data/features/images", "md5": features}],
        },
        "train@image_ml": {
            "cmd": "python stages/train.py image_ml",
            "deps": [
                {"path": "data/features/images", "md5": features},
                {"path": "src/moviegenre/branches", "md5": "b1"},
            ],
            "params": {"params.yaml": {"image_ml": {"n_estimators": 300}}},
            "outs": [{"path": "data/predictions/image_ml.parquet", "md5": predictions}],
        },
    }


def test_a_stage_moved_only_by_upstream_bytes_is_machine_noise() -> None:
    base = stage_inputs(_LockTree(_two_stage_lock()))
    other_bytes = stage_inputs(_LockTree(_two_stage_lock(features="f2", predictions="p2")))  # same sources, new bytes
    reason = machine_only("image_ml", base, other_bytes)
    assert reason == "same code, params and data upstream (dvc.lock)"
    verdict = judge(Score(0.6457, (0.62, 0.67)), Score(0.6451, (0.62, 0.67)), reason, None)
    assert delta_cell(verdict) == "-0.0006 machine noise"  # what the machines were is said once, under the table
    upstream_code = stage_inputs(_LockTree(_two_stage_lock(code="c2", features="f2", predictions="p2")))
    assert machine_only("image_ml", base, upstream_code) is None  # a change upstream: judged as real
    assert machine_only("text_ml", base, other_bytes) is None  # no such stage


def test_what_differs_between_two_machines_is_named_and_what_they_share_is_not() -> None:
    epyc, xeon = (
        Machine(tuple(EPYC["blas"]), tuple(EPYC["cpu_flags"])),
        Machine(tuple(XEON["blas"]), tuple(XEON["cpu_flags"])),
    )
    assert difference(epyc, xeon) == (
        "CPU flags avx512f, avx512_vnni, avx512_bf16, avx512_fp16 in head only; "
        "BLAS openblas 0.3.30 Haswell, openblas 0.3.31.188.0 Haswell → openblas 0.3.31.188.0 SkylakeX"
    )
    assert difference(xeon, epyc).startswith("CPU flags avx512f, avx512_vnni, avx512_bf16, avx512_fp16 in base only")
    assert difference(epyc, Machine(epyc.blas[::-1], epyc.cpu_flags)) == ""  # the same machine, listed in another order
    # stages that recorded different differences are named, each once
    notes = machine_notes({"image_dl": "CPU flags amx_tile in head only", "text_dl": "BLAS a → b"}, marked=False)
    assert [line for line in notes if line.startswith("- ")] == ["- image_dl: CPU flags amx_tile in head only",
                                                                 "- text_dl: BLAS a → b"]  # fmt: skip
    assert machine_notes({}, marked=True) == []


def test_the_branches_trained_with_cpu_dependent_kernels_come_from_their_classes() -> None:
    keras = {"image_dl", "text_dl", "text_encoder", "image_encoder", "encoder_fusion", "fusion"}
    assert cpu_dependent([*NAMES, "ensemble", "stacked"]) == keras
    assert keras < set(NAMES)  # the forests, text_linear: the same bytes on every CPU


def _checked_lock(text_ml_trees: int, features: str) -> dict:
    """check_params (every param, one stamp out) above featurize_images -> train@image_ml."""
    stages = _two_stage_lock(features=features, predictions=features)
    stages["check_params"] = {
        "cmd": "python -m moviegenre.cli check-params --stamp data/params.checked",
        "deps": [{"path": "src/moviegenre", "md5": "all-code"}],
        "params": {"params.yaml": {"image_ml": {"n_estimators": 300}, "text_ml": {"n_estimators": text_ml_trees}}},
        "outs": [{"path": "data/params.checked", "md5": "stamp"}],
    }
    for stage in ("featurize_images", "train@image_ml"):
        stages[stage]["deps"].append({"path": "data/params.checked", "md5": "stamp"})
    return stages


def test_another_branchs_param_upstream_does_not_make_a_stage_count_as_changed() -> None:
    # text_ml's trees changed, which check_params reads; its stamp, and image_ml's own inputs, did not
    base = stage_inputs(_LockTree(_checked_lock(30, "f1")))
    assert machine_only("image_ml", base, stage_inputs(_LockTree(_checked_lock(7, "f1")))) is not None
    # the same, with the features rewritten on another machine from the same inputs
    assert machine_only("image_ml", base, stage_inputs(_LockTree(_checked_lock(7, "f2")))) is not None
    stamp_changed = _checked_lock(7, "f2")
    stamp_changed["check_params"]["outs"][0]["md5"] = "stamp2"
    for stage in ("featurize_images", "train@image_ml"):
        stamp_changed[stage]["deps"][-1]["md5"] = "stamp2"
    assert machine_only("image_ml", base, stage_inputs(_LockTree(stamp_changed))) is None


def test_same_inputs_is_machine_noise_and_nothing_is_no_change() -> None:
    machine = judge(Score(0.60, (0.5, 0.62)), Score(0.70, (0.68, 0.72)), "same code", (0.05, 0.15))
    assert machine.kind == "machine" and "**" not in delta_cell(machine) and machine.method == "same code"
    assert judge(Score(0.8), Score(0.8), None, None).kind == "unchanged"
    assert judge(None, Score(0.8), None, None).kind == "new"
    assert judge(Score(0.8), None, None, None).kind == "removed"
    assert judge(Score(0.8), Score(0.81), None, None).kind == "unjudged"


def test_weighted_auc_equals_the_rank_formula_on_resampled_rows() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((80, 4)) < 0.3).astype(np.uint8)
    scores = np.round(rng.random((80, 4)) + 0.4 * y, 1)  # rounded: many ties, as forests give
    weights = rng.multinomial(80, np.full(80, 1 / 80), size=6).astype(float)
    rows = [np.repeat(np.arange(80), w.astype(int)) for w in weights]
    expected = [macro_auc_ranks(y[r], scores[r]) for r in rows]
    np.testing.assert_allclose(weighted_macro_auc(y, scores, weights), expected, rtol=0, atol=1e-12)


def test_paired_interval_separates_a_small_real_gain_from_jitter() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((600, 4)) < 0.25).astype(np.uint8)
    base = rng.random((600, 4)) + 0.8 * y
    assert paired_delta_interval(y, base, base) == (0.0, 0.0)
    jitter = paired_delta_interval(y, base, base + rng.normal(0, 0.01, base.shape))
    assert jitter[0] < 0 < jitter[1]
    better = paired_delta_interval(y, base, base + 0.2 * y)  # a few points of AUC
    assert better[0] > 0


def test_branch_names_come_from_the_summaries_not_a_list() -> None:
    head = {"image_ml": 0.6, "fusion": 0.7, "ensemble": 0.9, "val": {"image_ml": 0.6}}
    assert branch_names([head, {"text_ml": 0.8, "ensemble": 0.9}]) == ["image_ml", "fusion", "ensemble", "text_ml"]
    # a scored metrics file the summary leaves out comes before the ensemble
    assert branch_names([{"image_ml": 0.6, "ensemble": 0.9}], ["image_ml", "stacked", "ensemble"]) == [
        "image_ml", "stacked", "ensemble"]  # fmt: skip
    assert "image_ml" in branch_names([{}, {}]) and branch_names([{}, {}])[-1] == "ensemble"


# --- the whole report on a small git + DVC repository -------------------------------------------


def _scores(y: np.ndarray, proba: np.ndarray) -> dict:
    value = round(macro_auc_ranks(y, proba), 6)
    return {"roc_auc_macro": value, "roc_auc_macro_ci95": [round(value - 0.02, 4), round(value + 0.02, 4)]}


def _metrics(test: float, val: float, ci: float = 0.02) -> dict:
    return {split: {"roc_auc_macro": v, "roc_auc_macro_ci95": [round(v - ci, 4), round(v + ci, 4)], "n_movies": 300}
            for split, v in (("test", test), ("val", val))}  # fmt: skip


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))


def _predictions(path: Path, ids: list[str], split: list[str], proba: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(proba, columns=GENRES)
    frame.insert(0, "split", split)
    frame.insert(0, "id", ids)
    frame.to_parquet(path, index=False)


def _stage(deps: list[tuple[str, str]], params: dict) -> dict:
    return {
        "cmd": "true",
        "deps": [{"path": p, "hash": "md5", "md5": m * 16, "size": 1} for p, m in deps],
        "params": {"params.yaml": params},
    }


def _lock(text_ml_trees: int) -> dict:
    """image_ml's and encoder_fusion's inputs never change; text_ml's params do."""
    return {"schema": "2.0", "stages": {
        "train_image_ml": _stage([("data/features/images/pca.npy", "aa")], {"image_ml": {"n_estimators": 30}}),
        "train_text_ml": _stage([("data/features/text/tfidf.npz", "bb")], {"text_ml": {"n_estimators": text_ml_trees}}),
        "train_encoder_fusion": _stage([("data/features/embeddings/x.npy", "cc")], {"encoder_fusion": {"epochs": 2}}),
    }}  # fmt: skip


# what core.machine records: an AVX2-only EPYC (base) and an AVX-512 Xeon (head)
EPYC = {"blas": ["openblas 0.3.30 Haswell", "openblas 0.3.31.188.0 Haswell"], "cpu_flags": ["avx2", "fma"]}
XEON = {"blas": ["openblas 0.3.31.188.0 SkylakeX"],
        "cpu_flags": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16"]}  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Base commit, then a head in the workspace: text_ml really better, image_dl +0.011 (noise),
    image_ml moved with the same inputs, the ensemble better by a paired bootstrap, text_encoder
    jittered, encoder_fusion moved a few millionths with the same inputs, and a new branch (fusion)
    in head's summary only; base ran on the EPYC, head on the Xeon."""
    root = tmp_path_factory.mktemp("report") / "repo"
    root.mkdir()
    git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, env=env(), check=True)
    rng = np.random.default_rng(0)
    n = 300
    ids = [f"{i:04d}" for i in range(n)]
    split = ["test"] * 200 + ["val"] * 100
    y = (rng.random((n, len(GENRES))) < 0.3).astype(np.uint8)
    table = pd.DataFrame({"id": ids, "split": split, "genres": [[g for g, on in zip(GENRES, row, strict=True) if on]
                                                                  for row in y]})  # fmt: skip
    (root / "data/prepared").mkdir(parents=True)
    table.to_parquet(root / "data/prepared/movies.parquet", index=False)
    _write_json(root / "data/prepared/genres.json", {"genres": GENRES})
    (root / "params.yaml").write_text(
        yaml.safe_dump({"image_ml": {"n_estimators": 30}, "text_ml": {"n_estimators": 30}})
    )
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "train_image_ml": {"cmd": "true", "params": ["image_ml"]},
        "train_text_ml": {"cmd": "true", "params": ["text_ml"]},
    }}))  # fmt: skip

    base_ens = rng.random((n, len(GENRES))) + 0.5 * y
    base_enc = rng.random((n, len(GENRES))) + 0.9 * y
    test = np.array(split) == "test"
    val = ~test

    def side(ens: np.ndarray, enc: np.ndarray, scores: dict, trees: int, fusion: bool, machine: dict) -> None:
        _predictions(root / "data/predictions/ensemble.parquet", ids, split, ens)
        _predictions(root / "data/predictions/text_encoder.parquet", ids, split, enc)
        for name, (t, v) in scores.items():
            _write_json(root / f"metrics/{name}.json", _metrics(t, v))
        for name, proba in (("ensemble", ens), ("text_encoder", enc)):
            _write_json(root / f"metrics/{name}.json", {"test": _scores(y[test], proba[test]),
                                                        "val": _scores(y[val], proba[val])})  # fmt: skip
        summary = {name: json.loads((root / f"metrics/{name}.json").read_text())["test"]["roc_auc_macro"]
                   for name in [*scores, "text_encoder", "ensemble"]}  # fmt: skip
        if fusion:
            summary = {**summary, "fusion": 0.85}
            _write_json(root / "metrics/fusion.json", _metrics(0.85, 0.86))
        summary["val"] = {k: json.loads((root / f"metrics/{k}.json").read_text())["val"]["roc_auc_macro"]
                          for k in summary}  # fmt: skip
        _write_json(root / "metrics/summary.json", summary)
        _write_json(root / "metrics/timings/image_dl.json", {"seconds": {"fit": 100.0 + trees}, "machine": machine})
        for name in ("image_ml", "encoder_fusion", "text_encoder", "ensemble"):
            _write_json(root / f"metrics/timings/{name}.json", {"seconds": {"fit": 1.0}, "machine": machine})
        _write_json(root / "metrics/data.json", {"movies_out": n})
        (root / "dvc.lock").write_text(yaml.safe_dump(_lock(trees)))
        (root / "plots").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (trees, 0, 0)).save(root / "plots/macro_auc.png")

    base_scores = {"image_ml": (0.645746, 0.654087), "text_ml": (0.780, 0.790), "image_dl": (0.682929, 0.690891),
                   "encoder_fusion": (0.9053, 0.9016)}  # fmt: skip
    side(base_ens, base_enc, base_scores, trees=30, fusion=False, machine=EPYC)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    head_scores = {"image_ml": (0.649746, 0.654087), "text_ml": (0.860, 0.866), "image_dl": (0.693929, 0.690891),
                   "encoder_fusion": (0.90532, 0.90157)}  # fmt: skip
    head_enc = base_enc + rng.normal(0, 0.005, base_enc.shape)
    side(base_ens + 0.08 * y, head_enc, head_scores, trees=7, fusion=True, machine=XEON)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["text_ml"]["n_estimators"] = 7
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.fixture(scope="module")
def report(repo: Path) -> tuple[str, Path]:
    """`moviegenre report` from the project root, writing into a directory elsewhere."""
    out = repo.parent / "elsewhere" / "deep" / "report.md"
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", "report", "--base", "HEAD", "--out",
                           str(Path("..") / "elsewhere" / "deep" / "report.md")],
                          cwd=repo, env=env(), capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return out.read_text(), out


def _headline(text: str) -> dict[str, list[str]]:
    block = text.split("### Macro ROC-AUC by branch")[1].split("###")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| branch")]
    return {cells[0]: cells for cells in ([c.strip() for c in row.strip("|").split("|")] for row in rows)}


def test_headline_is_branch_by_val_and_test_with_verdicts(report: tuple[str, Path]) -> None:
    rows = _headline(report[0])
    assert list(rows) == ["image_ml", "text_ml", "image_dl", "encoder_fusion", "text_encoder", "ensemble", "fusion"]
    # columns: branch, val base -> head, Δ val, test base -> head, Δ test, judged by
    assert rows["text_ml"][3] == "0.7800 → 0.8600" and rows["text_ml"][4] == "**+0.0800** outside noise"
    assert rows["image_dl"][4] == f"+0.0110 within noise {CPU_MARK}" and rows["image_dl"][2] == "0"
    assert (
        rows["image_ml"][4] == "+0.0040 machine noise"
        and rows["image_ml"][5] == "same code, params and data upstream (dvc.lock)"
    )
    # a gain smaller than the intervals' width, yet consistent over the same movies
    assert rows["ensemble"][4].startswith("**+0.0") and rows["ensemble"][5] == "paired bootstrap"
    assert "within noise" in rows["text_encoder"][4] and "**" not in rows["text_encoder"][4]
    assert rows["fusion"][1] == "— → 0.8600" and rows["fusion"][4] == "new"
    assert "**Noise rule.**" in report[0]


def test_the_machines_are_said_once_and_cpu_dependent_branches_are_marked(report: tuple[str, Path]) -> None:
    text = report[0]
    assert max(len(line) for line in text.splitlines()) <= 160
    prose = " ".join(text.split())  # the notes are wrapped paragraphs
    assert text.count("**Machines.**") == 1 and text.count("avx512_vnni") == 1 and text.count("SkylakeX") == 1
    assert "CPU flags avx512f, avx512_vnni, avx512_bf16, avx512_fp16 in head only" in prose
    assert "BLAS openblas 0.3.30 Haswell, openblas 0.3.31.188.0 Haswell → openblas 0.3.31.188.0 SkylakeX" in prose
    assert prose.count(f"{CPU_MARK} trained with CPU-dependent float kernels") == 1
    rows = _headline(text)
    # Keras branches whose Δ is shown carry the mark; the forests, the ensemble and a new branch do not
    assert rows["encoder_fusion"][2] == f"-0.000030 machine noise {CPU_MARK}"
    assert rows["encoder_fusion"][4] == f"+0.000020 machine noise {CPU_MARK}"
    assert rows["text_encoder"][4].endswith(CPU_MARK) and rows["image_dl"][2] == "0"
    assert not any(CPU_MARK in cell for name in ("image_ml", "text_ml", "ensemble", "fusion") for cell in rows[name])
    timings = text.split("<summary>Timings")[1].split("</details>")[0]
    assert "machine" not in timings and "| image_dl | seconds.fit |" in timings


def test_params_that_changed_are_listed(report: tuple[str, Path]) -> None:
    params = report[0].split("### Params changed")[1].split("<details>")[0]
    assert "| `text_ml.n_estimators` | 30 | 7 |" in params
    assert "image_ml.n_estimators" not in params


def test_timings_and_counts_are_folded_in_details(report: tuple[str, Path]) -> None:
    text = report[0]
    headline = text.split("### Params changed")[0]
    assert "seconds" not in headline and "movies_out" not in headline
    folded = re.findall(r"<details>\n<summary>(.*?)</summary>(.*?)</details>", text, flags=re.S)
    by_summary = {summary: body for summary, body in folded}
    timings = next(body for summary, body in by_summary.items() if summary.startswith("Timings"))
    assert "| image_dl | seconds.fit | 130 | 107 |" in timings
    counts = next(body for summary, body in by_summary.items() if summary.startswith("Counts"))
    assert "| data | movies_out | 300 | 300 |" in counts


def test_base_and_head_figures_side_by_side_with_links_that_work_from_out(report: tuple[str, Path]) -> None:
    text, out = report
    figures = text.split("### Figures")[1]
    row = next(line for line in figures.splitlines() if line.startswith("| macro_auc"))
    links = re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", row)
    assert [alt for alt, _ in links] == ["macro_auc (base)", "macro_auc"]
    base_file, head_file = ((out.parent / link).resolve() for _, link in links)
    assert base_file == (out.parent / "report_figures/base/macro_auc.png").resolve()
    assert Image.open(base_file).getpixel((0, 0))[0] == 30  # the base revision's figure, from git
    assert head_file.is_file() and Image.open(head_file).getpixel((0, 0))[0] == 7
    assert not any(link.startswith("/") for _, link in links)


def test_no_figures_and_unknown_base(repo: Path) -> None:
    from moviegenre.cli.report import build_report
    from moviegenre.core.errors import MovieGenreError

    text = build_report("HEAD", cwd=repo, figures=False, paired=False)
    assert "### Figures" not in text
    rows = _headline(text)
    # without pairing the intervals decide, and they cannot see the ensemble's gain
    assert rows["ensemble"][5] == "95% intervals" and "within noise" in rows["ensemble"][4]
    with pytest.raises(MovieGenreError, match="--base nope: not a git revision"):
        build_report("nope", cwd=repo)
