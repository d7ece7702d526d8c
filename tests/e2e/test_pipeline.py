"""End to end on generated data: the whole `dvc repro`, reruns, `dvc exp run`, and the PR report."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.project import PROJECT_ROOT, dvc, env, git
from helpers.tiny_pipeline import STAGES_ON_A_CLUSTER, TINY, ran, reset_to_commit, stage_names
from sklearn.metrics import roc_auc_score

if TYPE_CHECKING:
    from click.testing import Result

pytestmark = pytest.mark.e2e

BRANCHES = ("image_ml", "text_ml", "text_linear", "image_dl", "text_dl", "text_encoder", "image_encoder",
            "encoder_fusion", "fusion")  # fmt: skip
PLOT_BRANCHES = ("text_ml", "text_linear", "text_dl", "text_encoder")
EPOCH_BRANCHES = ("image_dl", "text_dl", "text_encoder", "image_encoder", "encoder_fusion", "fusion")  # Keras


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_the_pipeline_ran_every_stage_and_every_branch(pipeline: Path) -> None:
    committed = yaml.safe_load((pipeline / "dvc.lock").read_text())["stages"]
    assert set(committed) == set(stage_names(pipeline)) and {f"train@{b}" for b in BRANCHES} <= set(committed)


def moviegenre(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", *args], cwd=repo, env=env(),
                          capture_output=True, text=True)  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"moviegenre {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def moviegenre_here(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``moviegenre <args>`` through Typer's test runner in this process, in ``repo``: the command
    line's own code without a Python and TensorFlow start-up per call (the tests that must see a
    real process run ``moviegenre``)."""
    from typer.testing import CliRunner

    from moviegenre.cli.app import app

    monkeypatch.chdir(repo)
    return CliRunner().invoke(app, list(args))


def test_every_branch_and_the_ensemble_write_metrics_in_the_contract(pipeline: Path) -> None:
    for name in (*BRANCHES, "ensemble"):
        metrics = json.loads((pipeline / "metrics" / f"{name}.json").read_text())
        for split in ("test", "val"):
            assert 0.0 <= metrics[split]["roc_auc_macro"] <= 1.0
            assert metrics[split]["n_genres"] == 5
            low, high = metrics[split]["roc_auc_macro_ci95"]
            assert low <= metrics[split]["roc_auc_macro"] <= high
    for branch in BRANCHES:
        spec = json.loads((pipeline / "models" / branch / "spec.json").read_text())
        assert spec["branch"] == branch and spec["genres"] == json.loads(
            (pipeline / "data/prepared/genres.json").read_text())["genres"]  # fmt: skip
    ensemble = json.loads((pipeline / "metrics" / "ensemble.json").read_text())
    assert set(ensemble["weights"]) == set(BRANCHES)
    for key in ("f1_macro", "f1_micro", "f1_samples", "precision_macro", "recall_macro"):
        assert 0.0 < ensemble["test"][key] <= 1.0, key
    model = json.loads((pipeline / "models/ensemble/ensemble.json").read_text())
    assert [c["branches"] for c in model["combiners"]] == [
        list(BRANCHES),
        ["image_ml", "image_dl", "image_encoder"],
        list(PLOT_BRANCHES),
    ]
    # fusion sees only movies with both, so the poster and plot combiners leave it out
    assert all(len(c["thresholds"]) == 5 for c in model["combiners"])
    # the headline view is the only metrics file: branch by split, nothing else
    shown = json.loads(dvc(pipeline, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert list(files) == ["metrics/summary.json"]
    summary = files["metrics/summary.json"]["data"]
    assert list(summary) == [*BRANCHES, "ensemble", "val"] and list(summary["val"]) == [*BRANCHES, "ensemble"]
    assert summary["ensemble"] == ensemble["test"]["roc_auc_macro"]


def vega_specs(html: str) -> dict[str, dict]:
    """The Vega-Lite spec of every chart of a `dvc plots show` page, by the id of its element."""
    specs = re.findall(r"var spec = (\{.*\});\s*vegaEmbed\('#([^']+)'", html)
    return {element: json.loads(spec) for spec, element in specs}


def title(spec: dict) -> str:
    return spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]


MEASURES = ("AUC", "loss", "learning rate")


def test_plots_show_renders_roc_and_training_curves(pipeline: Path) -> None:
    out = pipeline / "plots-html"
    done = dvc(pipeline, "plots", "show", "-o", str(out))
    assert "WARNING" not in done.stderr, done.stderr
    html = (out / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in html  # the offline template: Vega's scripts are in the page
    specs = {title(spec): spec for spec in vega_specs(html).values()}
    assert not [name for name in specs if re.search(r"/|\.(tsv|json)\b", name)]  # titles, not file paths
    # three charts per branch that fits in epochs, titled by branch and measure, and none for the
    # others: their fit has no epochs, and their dvclive run no curve
    curves = [name for name in specs if " · " in name]
    assert curves == [f"{branch} · {measure}" for branch in EPOCH_BRANCHES for measure in MEASURES]
    for branch in set(BRANCHES) - set(EPOCH_BRANCHES):
        assert f"dvclive/{branch}/" not in html and not (pipeline / "dvclive" / branch / "plots").exists()
    for branch in EPOCH_BRANCHES:  # train and val of a measure in one chart, an epoch's point each
        for measure, field in (("AUC", "auc"), ("loss", "loss")):
            rows = specs[f"{branch} · {measure}"]["data"]["values"]
            assert sorted({row["filename"] for row in rows}) == [f"train/{field}.tsv", f"val/{field}.tsv"]
            epochs = json.loads((pipeline / "metrics" / f"{branch}.json").read_text())["epochs"]["run"]
            assert len(rows) == 2 * epochs, (branch, measure)
    roc = specs["Test ROC (micro over genres): every branch and the ensemble"]
    assert [b for b in dict.fromkeys(row["branch"] for row in roc["data"]["values"])] == [*BRANCHES, "ensemble"]
    for spec in (roc, specs["image_dl · learning rate"]):  # a colour for each of 20 series, no repeat
        colours = spec["encoding"]["color"]["scale"]["range"]
        assert len(set(colours)) == len(colours) >= 20
    # each genre's panel has a rule at the threshold the ensemble fitted for it
    genre_sets = specs["Genre sets on val: precision, recall and F1 of each genre against its threshold"]
    rule = genre_sets["spec"]["layer"][1]
    assert rule["mark"]["type"] == "rule" and rule["encoding"]["x"]["field"] == "fitted"
    model = json.loads((pipeline / "models/ensemble/ensemble.json").read_text())
    genres = json.loads((pipeline / "data/prepared/genres.json").read_text())["genres"]
    fitted = {(row["genre"], row["fitted"]) for row in genre_sets["data"]["values"]}
    assert fitted == {(g, round(t, 4)) for g, t in zip(genres, model["combiners"][0]["thresholds"], strict=True)}


# Reads back what the browser drew: each chart's Vega view, its scales and its SVG (titles, legends
# and marks as text), recorded as vega-embed hands them over.
RECORD_VIEWS = """
Object.defineProperty(window, "vegaEmbed", {configurable: true,
  set(embed) { this.__embed = embed; },
  get() { return (element, spec, options) => this.__embed(element, spec, options).then(result => {
    (window.__views = window.__views || []).push([element.slice(1), result.view]); return result; }); }});
"""
DRAWN = """async () => Promise.all(window.__views.map(async ([id, view]) => {
  const scales = ["color"].filter(name => { try { view.scale(name); return true; } catch (e) { return false; } });
  return {id, svg: await view.toSVG(), colours: scales.length ? view.scale("color").range().length : 0};
}))"""


@pytest.mark.browser
def test_plots_page_renders_every_chart_offline(pipeline: Path) -> None:
    from helpers.browser import browser_page

    out = pipeline / "plots-offline"
    dvc(pipeline, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    charts, images = html.count("vegaEmbed('#"), html.count('<img src="static/')
    assert charts == 2 + len(MEASURES) * len(EPOCH_BRANCHES) and images == 2  # ROC, genre sets, curves; PNGs
    with browser_page() as page:
        page.add_init_script(RECORD_VIEWS)
        page.goto((out / "index.html").as_uri())
        page.wait_for_function(f"document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= {charts}",
                               timeout=60_000)  # fmt: skip
        page.wait_for_function(f"(window.__views || []).length >= {charts}", timeout=60_000)
        loaded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
        legends = page.evaluate("[...document.querySelectorAll('.vega-embed')].length")
        drawn = {chart["id"]: chart for chart in page.evaluate(DRAWN)}
        assert page.blocked == [] and page.errors == []
    assert loaded == [True, True] and legends == charts == len(drawn)
    texts = {chart_id: re.findall(r"<text[^>]*>([^<]*)</text>", chart["svg"]) for chart_id, chart in drawn.items()}
    assert not [t for shown in texts.values() for t in shown if re.search(r"\.(tsv|json)\b", t)]  # no file paths
    for branch in EPOCH_BRANCHES:
        auc = texts[f"{branch}_auc"]
        assert f"{branch} · AUC" in auc and {"train", "val"} <= set(auc)  # one chart, both series in its legend
        assert f"{branch} · learning rate" in texts[f"{branch}_learning_rate"]
    assert not [chart_id for chart_id in drawn if chart_id.startswith(tuple(set(BRANCHES) - set(EPOCH_BRANCHES)))]
    genres = json.loads((pipeline / "data/prepared/genres.json").read_text())["genres"]
    rules = drawn["plots_thresholds_json"]["svg"].count('class="mark-rule role-mark')
    assert rules == len(genres)  # a fitted-threshold rule in each genre's panel
    assert drawn["plots_roc_json"]["colours"] >= 20


def test_nothing_changed_runs_nothing(pipeline: Path) -> None:
    assert ran(dvc(pipeline, "repro").stdout) == set()


def test_one_branch_param_reruns_that_branch_and_ensemble_and_reports(pipeline: Path) -> None:
    set_param(pipeline, "text_ml", "n_estimators", 7)
    assert ran(dvc(pipeline, "repro").stdout) == {"check_params", "train@text_ml", "ensemble"}

    done = moviegenre(pipeline, "report", "--base", "HEAD", "--out", "report.md")
    assert done.stderr == ""
    report = (pipeline / "report.md").read_text()
    assert max(len(line) for line in report.splitlines()) <= 160
    assert "| `text_ml.n_estimators` | 30 | 7 |" in report
    headline = report.split("### Macro ROC-AUC by branch")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): line for line in headline.splitlines() if line.startswith("| ")}
    assert set(rows) >= {*BRANCHES, "ensemble"}
    assert "paired bootstrap" in rows["text_ml"]  # base predictions read at HEAD from the DVC cache
    assert rows["image_ml"].count("| 0 |") == 2  # untouched branches do not move
    assert "| metrics/summary.json | val.text_ml |" in report.split("dvc metrics diff")[1]
    assert "![macro_auc](plots/macro_auc.png)" in report
    assert "![macro_auc (base)](report_figures/base/macro_auc.png)" in report
    reset_to_commit(pipeline)  # back to the committed run for the tests after this one


@pytest.mark.heavy
def test_a_queued_point_records_its_run_and_compares_within_a_terminal(pipeline: Path) -> None:
    """A point queued and run by the queue (`dvc exp run --queue`, then `--run-all`; a plain
    `dvc exp run` is what tests/e2e/test_sweep_across_machines.py runs), in the tables that
    compare it with the baseline; more points are more rows of the same kind. Then what the
    experiment recorded, in ``_check_recorded``."""
    reset_to_commit(pipeline)
    dvc(pipeline, "exp", "run", "--queue", "-n", "trees-10", "-S", "image_ml.n_estimators=10")
    dvc(pipeline, "exp", "run", "--run-all", "--jobs", "1")
    text = moviegenre(pipeline, "experiments").stdout
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120, text
    assert lines[0].split()[:2] == ["Experiment", "changed"] and lines[1].split()[-1] == "ensemble"
    (row,) = [line for line in lines if line.startswith("trees-10")]
    assert "image_ml.n_estimators=10" in row
    values = re.findall(r"\d\.\d{4}", row)
    assert len(values) == len(BRANCHES) + 1 and all(0.0 <= float(v) <= 1.0 for v in values), row
    # the sweep reached image_ml and the ensemble (which reads every branch's predictions): they are
    # judged against the baseline (the row after the workspace), and every other branch is `=`
    workspace = next(i for i, line in enumerate(lines) if line.startswith("workspace"))
    baseline = re.findall(r"(\d\.\d{4})", lines[workspace + 1])
    cells = re.findall(r"(\d\.\d{4})(.)", row + " ")
    marks = {branch: mark for branch, (_, mark) in zip((*BRANCHES, "ensemble"), cells, strict=True)}
    assert {b: m for b, m in marks.items() if b not in ("image_ml", "ensemble")} == dict.fromkeys(
        set(BRANCHES) - {"image_ml"}, "="), row  # fmt: skip
    for at, branch in ((0, "image_ml"), (len(BRANCHES), "ensemble")):
        value, base = cells[at][0], baseline[at]
        assert (marks[branch] in "+-~?") if value != base else marks[branch] == " ", row

    # DVC's own table, as docs/experiments.md gives it: every line fits a 120-column terminal, no column cut
    shown = _exp_show(pipeline, documented_exp_show())
    assert max(len(line) for line in shown.splitlines()) <= 120, shown
    assert "…" not in shown and "image_ml.n_estimators" in shown.splitlines()[1], shown  # the header, whole
    assert "trees-10" in shown, shown
    assert not any(column in shown for column in ("Created", "val.", "data/predictions")), shown
    # as the docs say, the plain --only-changed table does not fit
    plain = _exp_show(pipeline, ["exp", "show", "--only-changed"])
    assert max(len(line) for line in plain.splitlines()) > 120, plain
    _check_recorded(pipeline, "trees-10", 10)


def _check_recorded(pipeline: Path, name: str, trees: int) -> None:
    """The experiment records the value it set and the metrics of its own run: summary.json's
    image_ml is what that run's train stage wrote to metrics/image_ml.json (read at the
    experiment's commit), from a forest of ``trees`` trees instead of the baseline's 30, whose
    predictions differ. The AUC itself may equal the baseline's on generated data, so it is not
    compared."""
    from dvc.api import DVCFileSystem

    shown = json.loads(dvc(pipeline, "exp", "show", "--json").stdout)
    found = [(base, run) for base in shown for e in base.get("experiments") or [] for run in e.get("revs", [])
             if run.get("name") == name]  # fmt: skip
    assert len(found) == 1, f"experiment {name} not found once in {shown}"
    base, run = found[0]
    data = run["data"]
    assert data["params"]["params.yaml"]["data"]["image_ml"]["n_estimators"] == trees
    assert base["data"]["params"]["params.yaml"]["data"]["image_ml"]["n_estimators"] == TINY["image_ml"]["n_estimators"]
    summary = data["metrics"]["metrics/summary.json"]["data"]

    at_run, at_base = DVCFileSystem(str(pipeline), rev=run["rev"]), DVCFileSystem(str(pipeline), rev=base["rev"])
    written = json.loads(at_run.read_text("metrics/image_ml.json"))
    assert summary["image_ml"] == written["test"]["roc_auc_macro"]
    assert summary["val"]["image_ml"] == written["val"]["roc_auc_macro"]
    assert json.loads(at_run.read_text("metrics/summary.json")) == summary  # the file the run wrote, as shown
    for fs, count in ((at_run, trees), (at_base, TINY["image_ml"]["n_estimators"])):
        assert json.loads(fs.read_text("models/image_ml/spec.json"))["settings"]["n_estimators"] == count
        assert json.loads(fs.read_text("models/image_ml/forest.json"))["n_trees"] == count
    with (
        at_run.open("data/predictions/image_ml.parquet", "rb") as new,
        at_base.open("data/predictions/image_ml.parquet", "rb") as old,
    ):
        predicted, baseline = pd.read_parquet(new), pd.read_parquet(old)
    assert predicted["id"].tolist() == baseline["id"].tolist()
    genres = [c for c in predicted.columns if c not in ("id", "split")]
    assert not np.array_equal(predicted[genres].to_numpy(), baseline[genres].to_numpy())


def documented_exp_show() -> list[str]:
    """The `dvc exp show` arguments docs/experiments.md gives for a sweep's table in 120 columns."""
    text = (PROJECT_ROOT / "docs" / "experiments.md").read_text()
    (command,) = {
        line.split("#")[0].strip() for line in text.splitlines() if line.startswith("dvc exp show") and "--drop" in line
    }
    return shlex.split(command)[1:]


def _exp_show(repo: Path, args: list[str]) -> str:
    """``dvc <args>`` as a 120-column terminal would run it (COLUMNS is the width DVC's table reads)."""
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env={**env(), "COLUMNS": "120"},
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_predict_dataset_reproduces_the_ensemble_test_probabilities(pipeline: Path) -> None:
    archive = (pipeline / "archive-path").read_text()
    done = moviegenre(pipeline, "predict", "--dataset", archive, "--out", "preds.csv", "--branches")
    predicted = pd.read_csv(pipeline / "preds.csv", dtype={"id": str}).set_index("id")
    genres = json.loads((pipeline / "data/prepared/genres.json").read_text())["genres"]
    # the dataset carries genres: the predictions are scored against them, printed and written beside --out
    score = json.loads((pipeline / "preds.score.json").read_text())
    raw = pd.read_parquet(pipeline / "data/raw/movies.parquet").set_index("id").loc[predicted.index]
    labelled = raw["genres"].map(len) > 0
    y = np.array([[genre in list(names) for genre in genres] for names in raw.loc[labelled, "genres"]])
    expected = [roc_auc_score(y[:, g], predicted.loc[labelled, genre]) for g, genre in enumerate(genres)]
    assert score["n_movies"] == int(labelled.sum()) and score["n_genres"] == len(genres)
    assert score["roc_auc_macro"] == pytest.approx(np.mean(expected), abs=1e-4) and score["roc_auc_macro"] > 0.5
    assert f"macro ROC-AUC {score['roc_auc_macro']:.4f}" in done.stderr and "preds.score.json" in done.stderr
    assert len(predicted) == 120
    assert list(predicted.columns[: len(genres) + 2]) == ["title", "genres", *genres]
    raw = pd.read_parquet(pipeline / "data/raw/movies.parquet").set_index("id")
    assert predicted["title"].tolist() == raw.loc[predicted.index, "title"].tolist()
    thresholds = json.loads((pipeline / "models/ensemble/ensemble.json").read_text())["combiners"][0]["thresholds"]
    with_both = predicted.loc[predicted[f"image_ml:{genres[0]}"].notna()]
    expected = ["|".join(g for g, t in zip(genres, thresholds, strict=True) if row[g] >= t)
                for _, row in with_both.iterrows()]  # fmt: skip
    assert with_both["genres"].fillna("").tolist() == expected
    assert f"text_dl:{genres[0]}" in predicted.columns
    stored = pd.read_parquet(pipeline / "data/ensemble/predictions.parquet").set_index("id")
    test = stored[stored["split"] == "test"]
    np.testing.assert_allclose(predicted.loc[test.index, genres].to_numpy(), test[genres].to_numpy(), atol=1e-6)
    for branch in BRANCHES:
        branch_stored = pd.read_parquet(pipeline / f"data/predictions/{branch}.parquet").set_index("id")
        columns = [f"{branch}:{g}" for g in genres]
        np.testing.assert_allclose(
            predicted.loc[test.index, columns].to_numpy(), branch_stored.loc[test.index, genres].to_numpy(), atol=1e-6
        )


def test_predict_one_movie_by_the_branches_that_see_it(pipeline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process; test_predict_prints_nothing_on_stderr runs the installed command on a plot."""
    from helpers.synthetic import poster_bytes

    def predict(*args: str) -> str:
        done = moviegenre_here(pipeline, monkeypatch, "predict", *args)
        assert done.exit_code == 0, done.output
        return done.stdout

    (pipeline / "poster.jpg").write_bytes(poster_bytes(["Horror"], 7))
    both = predict("--poster", "poster.jpg", "--plot", "ghost blood scream haunted")
    assert both.startswith(
        "poster and plot: scored by image_ml, image_dl, image_encoder, text_ml, text_linear, text_dl, text_encoder, "
        "encoder_fusion, fusion"
    )
    rows = [line.split() for line in both.splitlines()[3:]]
    assert len(rows) == 5 and rows[0][0] == "Horror"  # the synthetic horror words and colours
    marked = [row[0] for row in rows if row[1] == "*"]
    assert both.splitlines()[1] == "genres: " + (", ".join(marked) or "(none above its threshold)")
    assert "Horror" in marked
    plot_only = predict("--plot", "love kiss wedding", "--branches", "--top", "2")
    assert plot_only.splitlines()[0] == "plot only: scored by " + ", ".join(PLOT_BRANCHES)
    assert plot_only.splitlines()[2].split() == ["genre", "ensemble", *PLOT_BRANCHES]
    assert len(plot_only.splitlines()) == 5
    answer = json.loads(predict("--plot", "love kiss wedding", "--json", "--branches"))
    assert answer["seen"] == "plot only" and answer["branches"] == list(PLOT_BRANCHES)
    ranked = list(answer["probabilities"])
    assert len(ranked) == 5 and sorted(answer["probabilities"].values(), reverse=True) == list(
        answer["probabilities"].values()
    )
    assert set(answer["by_branch"]) == set(answer["branches"])
    shown = [row.split()[0] for row in plot_only.splitlines()[3:]]
    in_top = [g for g in answer["genres"] if g in shown]
    hidden = len(answer["genres"]) - len(in_top)
    expected = ", ".join(in_top) + (f"{', ' if in_top else ''}{hidden} more below the top 2" if hidden else "")
    assert plot_only.splitlines()[1] == "genres: " + (expected or "(none above its threshold)")
    assert ranked[:2] == shown  # the table and the JSON rank alike


def test_predict_prints_nothing_on_stderr(pipeline: Path) -> None:
    """No TensorFlow start-up lines: a clean stderr is where a real warning gets noticed."""
    (pipeline / "plot.txt").write_text("ghost blood scream haunted")
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", "predict", "--plot-file", "plot.txt"], cwd=pipeline,
                          env={k: v for k, v in env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("plot only")
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--poster", "nope.jpg"], "nope.jpg: poster file not found"),
        (["--poster", "dvc.yaml"], "dvc.yaml: not a readable image (not an image)"),
        (["--plot", "   "], "--plot: the plot is empty"),
        (["--plot-file", "missing.txt"], "missing.txt: plot file not found"),
        (
            ["--dataset", "nowhere.tar.gz", "--out", "x.csv"],
            "nowhere.tar.gz: data source not found (expected an archive or a directory)",
        ),
        (["--plot", "a plot", "--top", "-1"], "--top must be 0 (all genres) or a positive number, not -1"),
        (["--dataset", "nowhere.tar.gz", "--out", "models"], "models: is a directory; give --out a file name"),
        (
            ["--dataset", "dvc.yaml", "--out", "dvc.yaml"],
            "dvc.yaml: is part of the dataset being predicted; give --out a path outside dvc.yaml",
        ),
        (
            ["--dataset", "models", "--out", "models/x.csv"],
            "models/x.csv: is part of the dataset being predicted; give --out a path outside models",
        ),
        (
            ["--dataset", "nowhere.tar.gz", "--out", "x.csv", "--timeout-s", "nan"],
            "--timeout-s must be a finite number >= 0.1, not nan",
        ),
        (["--dataset", "nowhere.tar.gz", "--out", "x.csv", "--retries", "99"], "--retries must be in [0, 20], not 99"),
    ],
)
def test_predict_bad_input_is_one_line_and_non_zero(
    pipeline: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In this process (test_predict_before_repro_says_to_run_it runs the installed command)."""
    done = moviegenre_here(pipeline, monkeypatch, "predict", *args)
    assert done.exit_code == 2, done.output
    assert done.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert not (pipeline / "x.csv").exists()


@pytest.mark.parametrize("damaged", ["models/text_ml/proba.npy", "models/ensemble/ensemble.json"])
def test_a_damaged_model_is_one_line_and_exit_2_never_an_answer(pipeline: Path, damaged: str) -> None:
    path = pipeline / damaged
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01  # one bit, as a damaged cache object would have it
    path.write_bytes(bytes(flipped))
    try:
        done = moviegenre(pipeline, "predict", "--plot", "a detective in the city at night", check=False)
    finally:
        path.write_bytes(good)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {damaged}: corrupt or replaced") and "dvc checkout --force" in line


def test_movies_without_genres_are_predicted_not_dropped(pipeline: Path, tmp_path: Path) -> None:
    source = tmp_path / "new"
    source.mkdir()
    plots = ["a detective hunts a killer in the city at night", "love and war on a space ship with a robot"]
    pd.DataFrame({"id": ["n1", "n2"], "title": ["One", "Two"], "year": ["2026", ""], "plot": plots,
                  "genres": ["", ""]}).to_csv(source / "movies.csv", index=False)  # fmt: skip
    done = moviegenre(pipeline, "predict", "--dataset", str(source), "--out", str(tmp_path / "p.csv"))
    predicted = pd.read_csv(tmp_path / "p.csv", dtype={"id": str})
    assert predicted["id"].tolist() == ["n1", "n2"] and "not predicted" not in done.stderr


def test_predict_before_repro_says_to_run_it(tmp_path: Path) -> None:
    done = moviegenre(tmp_path, "predict", "--plot", "a plot", check=False)
    assert done.returncode == 2
    assert "not found (run `dvc repro prepare`)" in done.stderr


def test_editing_a_module_marks_the_stages_whose_deps_cover_it(pipeline: Path) -> None:
    """Code deps are folders: an edit reruns every stage whose folders hold the file, and those
    include every stage that imports it (the graph stays truthful)."""
    from helpers.stage_imports import covered, resolved_stages, stage_code

    stages = resolved_stages(pipeline)
    for module in ("src/moviegenre/evaluation/metrics.py", "src/moviegenre/features/text.py",
                   "src/moviegenre/branches/forests.py", "src/moviegenre/download/http_client.py"):  # fmt: skip
        path = pipeline / module
        original = path.read_text()
        path.write_text(original + "# an edit\n")
        try:
            status = json.loads(dvc(pipeline, "status", "--json").stdout)
        finally:
            path.write_text(original)
        expected = {name for name, stage in stages.items() if covered(module, stage["deps"])}
        importers = {name for name, stage in stages.items() if module in stage_code(name, stage["cmd"], pipeline)}
        assert set(status) == expected and importers <= expected, module
    # one branch's module reruns that branch (and check_params, which validates every section); the
    # ensemble reruns only if the branch's predictions change
    assert set(json.loads(_status_after_edit(pipeline, "src/moviegenre/branches/text_dl.py"))) == {
        "check_params", "train@text_dl"}  # fmt: skip
    # the HTTP client: the download alone (and check_params), no branch
    assert set(json.loads(_status_after_edit(pipeline, "src/moviegenre/download/http_client.py"))) == {
        "check_params", "download"}  # fmt: skip
    assert dvc(pipeline, "status", "--json").stdout.strip() == "{}"


def _status_after_edit(repo: Path, module: str) -> str:
    path = repo / module
    original = path.read_text()
    path.write_text(original + "# an edit\n")
    try:
        return dvc(repo, "status", "--json").stdout
    finally:
        path.write_text(original)


def _out_hashes(repo: Path) -> dict[str, str]:
    """Every output's hash in dvc.lock, but the timings (which record wall time, so move every run)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {
        f"{name}:{out['path']}": out["md5"]
        for name, stage in lock.items()
        for out in stage.get("outs", [])
        if not out["path"].startswith("metrics/timings/")
    }


@pytest.mark.heavy
def test_forcing_every_stage_again_changes_no_output(pipeline: Path) -> None:
    """One forced run of the graph: every stage runs again on the same inputs, but those that
    tests/e2e/test_on_a_dask_cluster.py forces on a cluster and holds to the same bytes. A stage
    whose bytes moved moves its own outputs and those of the stages below it; the first is the one."""
    reset_to_commit(pipeline)
    committed = _out_hashes(pipeline)
    stages = [name for name in stage_names(pipeline) if name not in STAGES_ON_A_CLUSTER]
    forced = dvc(pipeline, "repro", "--force", "--single-item", *stages)
    assert ran(forced.stdout) == set(stages)
    moved = {out for out, md5 in _out_hashes(pipeline).items() if committed[out] != md5}
    assert not moved, f"forcing every stage changed {sorted(moved)}"
    reset_to_commit(pipeline)


def test_an_unknown_key_anywhere_stops_repro_naming_it(pipeline: Path) -> None:
    original = (pipeline / "params.yaml").read_text()
    try:
        set_param(pipeline, "data", "timout_s", 5)
        failed = dvc(pipeline, "repro", check=False)
        assert failed.returncode != 0
        assert "error: params.yaml: unknown key 'data.timout_s'" in failed.stderr
        assert ran(failed.stdout) == {"check_params"}
    finally:
        (pipeline / "params.yaml").write_text(original)


def test_a_failed_stage_leaves_no_half_written_log_and_checkout_restores_it(pipeline: Path) -> None:
    """No output is persisted (every stage is run-cacheable), so DVC clears a stage's outputs before
    it runs; a failed run writes none, and the last good ones come back from the DVC cache."""
    reset_to_commit(pipeline)
    kept = ("metrics/image_ml.json", "dvclive/image_ml/params.yaml", "dvclive/image_ml/metrics.json",
            "models/image_ml/forest.json")  # fmt: skip
    before = {name: (pipeline / name).read_bytes() for name in kept}
    original = (pipeline / "params.yaml").read_text()
    try:
        set_param(pipeline, "image_ml", "n_estimators", 0)
        failed = dvc(pipeline, "repro", "--single-item", "train@image_ml", check=False)
        assert failed.returncode != 0
        assert "'image_ml.n_estimators' must be in [1, 5000], not 0" in failed.stderr
    finally:
        (pipeline / "params.yaml").write_text(original)
    assert not any((pipeline / name).exists() for name in kept)
    dvc(pipeline, "checkout")  # docs/reproducibility.md: after a failed stage
    assert {name: (pipeline / name).read_bytes() for name in kept} == before
    assert dvc(pipeline, "status", "--json").stdout.strip() == "{}"


def _outputs(repo: Path, paths: tuple[str, ...]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in paths:
        path = repo / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                files[str(file.relative_to(repo))] = file.read_bytes()
    return files


def test_a_run_is_restored_not_retrained_when_its_param_comes_back_here_or_on_a_teammates_clone(
    pipeline: Path, tmp_path: Path
) -> None:
    """A param changed and run, then changed back: every stage is restored from the run-cache.
    Then docs/sharing.md: this clone pushed its outputs and run history while the changed run was
    in its workspace; a teammate's clone pulls them, and `dvc repro --pull` of that run checks it
    out from the cache instead of running it."""
    reset_to_commit(pipeline)
    committed = _out_hashes(pipeline)
    outputs = ("models/text_linear", "data/predictions/text_linear.parquet", "metrics/text_linear.json",
               "dvclive/text_linear", "models/ensemble", "metrics/ensemble.json")  # fmt: skip
    before = _outputs(pipeline, outputs)
    storage = tmp_path / "storage"
    dvc(pipeline, "remote", "add", "--local", "-d", "storage", str(storage))
    try:
        dvc(pipeline, "push")  # the committed run, as on the team's remote
        set_param(pipeline, "text_linear", "C", 0.5)
        assert {"train@text_linear", "ensemble"} <= ran(dvc(pipeline, "repro").stdout)
        ran_there = _outputs(pipeline, outputs)
        assert ran_there != before
        dvc(pipeline, "push", "--run-cache")
    finally:  # the shared project pushes nowhere after this test (.dvc/config.local is no file git resets)
        dvc(pipeline, "remote", "remove", "--local", "storage")

    git(pipeline, "checkout", "--", "params.yaml")
    back = dvc(pipeline, "repro").stdout
    assert ran(back) == set(), back
    for stage in ("train@text_linear", "ensemble"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back
    assert _outputs(pipeline, outputs) == before
    assert _out_hashes(pipeline) == committed  # every output as committed but the timings

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(pipeline), str(clone))
    dvc(clone, "remote", "add", "--local", "-d", "storage", str(storage))
    dvc(clone, "pull", "--run-cache")
    assert ran(dvc(clone, "repro").stdout) == set()
    set_param(clone, "text_linear", "C", 0.5)
    restored = dvc(clone, "repro", "--pull").stdout
    assert ran(restored) == set(), restored
    assert "Stage 'train@text_linear' is cached - skipping run, checking out outputs" in restored
    assert _outputs(clone, outputs) == ran_there


@pytest.mark.parametrize(
    ("section", "key", "value", "stage", "marked"),
    [
        ("embed_posters", "input_size", 48, "embed_posters", {"image_encoder", "encoder_fusion", "fusion"}),
        ("embed_text", "sequence_length", 24, "embed_text", {"text_dl", "text_encoder", "encoder_fusion", "fusion"}),
    ],
)
def test_an_encoder_change_marks_no_branch_of_the_other_modality(
    pipeline: Path, section: str, key: str, value: int, stage: str, marked: set[str]
) -> None:
    """The encoder's stage runs on its changed param and writes other embeddings; DVC then marks
    for a rerun exactly the branches that read that modality's features (each reads one set, its
    modality's folder or both folders) and no branch of the other modality. A `dvc repro` would
    rerun those and the ensemble; the stages past the encoder are DVC's decision from the same
    status, so the test stops there. Changed back, every stage is restored from the run-cache."""
    reset_to_commit(pipeline)
    committed = _out_hashes(pipeline)
    set_param(pipeline, section, key, value)
    try:
        assert ran(dvc(pipeline, "repro", stage).stdout) == {"check_params", stage}
        status = json.loads(dvc(pipeline, "status", "--json").stdout)
    finally:
        git(pipeline, "checkout", "--", "params.yaml")
    assert set(status) == {f"train@{branch}" for branch in marked}, status
    assert all("changed deps" in change for changes in status.values() for change in changes), status
    assert ran(dvc(pipeline, "repro").stdout) == set()  # back: every stage restored from the run-cache
    assert _out_hashes(pipeline) == committed


def test_a_model_trained_on_other_features_is_refused_in_one_line(pipeline: Path) -> None:
    from helpers.synthetic import poster_bytes

    (pipeline / "poster.jpg").write_bytes(poster_bytes(["Horror"], 7))
    try:
        set_param(pipeline, "images", "pca_components", 5)
        dvc(pipeline, "repro", "--single-item", "featurize_images")
        done = moviegenre(pipeline, "predict", "--poster", "poster.jpg", check=False)
        assert done.returncode == 2
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: models/image_ml was trained on 89 features (pca 8 + colour 81)")
        assert "now gives 86 (pca 5 + colour 81)" in last and "Traceback" not in done.stderr
    finally:  # the stage rewrote dvc.lock too: params, lock and outputs back as committed
        reset_to_commit(pipeline)
