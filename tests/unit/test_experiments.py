"""`moviegenre experiments`: a branch is marked `=` when its own stage's inputs are the baseline's.

Every stage sits below check_params, which reads every param, so a sweep of one branch's param
changes check_params' params in dvc.lock; the branches the sweep did not reach must still read
`=`, and only the swept branch and the ensemble be judged against the noise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.project import env, git

from moviegenre.cli.experiments import LEGEND, Row, table

NAMES = ["image_ml", "text_ml", "image_dl", "ensemble"]


def _stage(cmd: str, deps: dict[str, str], params: dict, outs: list[str]) -> dict:
    return {
        "cmd": cmd,
        "deps": [{"path": path, "hash": "md5", "md5": digest} for path, digest in deps.items()],
        "params": {"params.yaml": params},
        "outs": [{"path": path, "hash": "md5", "md5": "out"} for path in outs],
    }


def _lock(params: dict, image_features: str = "img1", predictions: str = "pred1") -> dict:
    """check_params over every param -> one train stage per branch -> the ensemble."""
    stamp = {"data/params.checked": "stamp"}
    train = {
        name: _stage(
            f"python stages/train.py {name}",
            {**stamp, f"data/features/{features}": digest, "src/moviegenre/branches": "code"},
            {name: params[name], "seed": 42},
            [f"data/predictions/{name}.parquet"],
        )
        for name, features, digest in (
            ("image_ml", "images", image_features),
            ("text_ml", "text", "txt1"),
            ("image_dl", "pixels", "px1"),
        )
    }
    check = _stage("python -m moviegenre.cli check-params", {"src/moviegenre": "all"}, params, [*stamp])
    ensemble = _stage("python stages/ensemble.py", {"data/predictions": predictions}, {"seed": 42}, ["metrics"])
    stages = {"check_params": check, **{f"train@{name}": stage for name, stage in train.items()}, "ensemble": ensemble}
    return {"schema": "2.0", "stages": stages}


def _write(root: Path, lock: dict, scores: dict[str, tuple[float, float]]) -> dict:
    """dvc.lock and each name's metrics file (test AUC with a 95% interval ``± width``)."""
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    (root / "metrics").mkdir(exist_ok=True)
    for name, (value, width) in scores.items():
        block = {"roc_auc_macro": value, "roc_auc_macro_ci95": [round(value - width, 4), round(value + width, 4)]}
        (root / f"metrics/{name}.json").write_text(json.dumps({"test": block}))
    summary = {name: value for name, (value, _) in scores.items()}
    (root / "metrics/summary.json").write_text(json.dumps(summary))
    return summary


BASE_PARAMS = {"image_ml": {"n_estimators": 30}, "text_ml": {"n_estimators": 30}, "image_dl": {"epochs": 2}}
BASE_SCORES = {"image_ml": (0.60, 0.02), "text_ml": (0.80, 0.02), "image_dl": (0.68, 0.02), "ensemble": (0.90, 0.02)}
# image_ml really better, the ensemble within the noise; image_dl moved as another machine moves it
HEAD_SCORES = {"image_ml": (0.66, 0.02), "text_ml": (0.80, 0.02), "image_dl": (0.6881, 0.02),
               "ensemble": (0.905, 0.02)}  # fmt: skip


@pytest.fixture
def baseline(tmp_path: Path) -> tuple[Path, Row]:
    """A git + DVC repository whose commit is the baseline of the workspace."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, env=env(), check=True)
    summary = _write(root, _lock(BASE_PARAMS), BASE_SCORES)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "baseline")
    rev = git(root, "rev-parse", "HEAD").strip()
    return root, Row("main", rev, {"image_ml.n_estimators": 30}, summary, "")


def _marks(root: Path, base: Row, lock: dict) -> dict[str, str]:
    """The workspace row's mark after each name, from the table as printed."""
    summary = _write(root, lock, HEAD_SCORES)
    head = Row("exp-1", "workspace", {}, summary, "", baseline=base, changed=["image_ml.n_estimators=12"])
    text = table([base, head], root)
    assert text.splitlines()[-1] == LEGEND
    (row,) = [line for line in text.splitlines() if line.startswith("exp-1")]
    values = re.findall(r"(\d\.\d{4})(.)", row + " ")
    assert [float(v) for v, _ in values] == [HEAD_SCORES[name][0] for name in NAMES], row
    return dict(zip(NAMES, (mark for _, mark in values), strict=True))


def test_a_swept_param_judges_its_branch_and_marks_the_others_same_inputs(baseline: tuple[Path, Row]) -> None:
    root, base = baseline
    params = {**BASE_PARAMS, "image_ml": {"n_estimators": 12}}  # check_params reads it too
    marks = _marks(root, base, _lock(params, predictions="pred2"))
    # text_ml did not move, image_dl moved by the machine alone: neither stage's inputs changed
    assert marks == {"image_ml": "+", "text_ml": "=", "image_dl": "=", "ensemble": "~"}


def test_a_branch_whose_deps_changed_is_judged(baseline: tuple[Path, Row]) -> None:
    root, base = baseline
    marks = _marks(root, base, _lock(BASE_PARAMS, image_features="img2", predictions="pred2"))
    # image_ml read other features; image_dl's own lock entry is unchanged in this sweep
    assert marks == {"image_ml": "+", "text_ml": "=", "image_dl": "=", "ensemble": "~"}
