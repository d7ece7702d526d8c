"""End to end on generated data: the whole `dvc repro`, then reruns only where inputs changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from project import copy_project, dvc

pytestmark = pytest.mark.e2e

# Small but real settings so the whole pipeline runs in seconds on generated data.
TINY = {
    "prepare": {"min_genre_count": 2},
    "images": {"height": 48, "width": 32, "pca_components": 8, "workers": 2},
    "text": {
        "tfidf": {"ngram_max": 1, "min_df": 1, "max_df": 1.0, "max_features": 2000, "sublinear_tf": True,
                  "stop_words": "english"},
        "counts": {"ngram_max": 1, "min_df": 1, "max_features": 2000, "stop_words": "english"},
        "sequences": {"vocab_size": 200, "length": 24},
    },
    "image_ml": {"n_estimators": 30},
    "text_ml": {"n_estimators": 30},
}  # fmt: skip


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthetic import make_mmimdb_archive

    root = tmp_path_factory.mktemp("pipeline")
    archive = make_mmimdb_archive(root / "tiny.tar.gz", n=120, seed=3)
    repo = copy_project(root / "repo", {"data": {"source": str(archive), "sha256": None}, **TINY})
    first = dvc(repo, "repro")
    stages = set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    assert ran(first.stdout) == stages
    return repo


def test_every_branch_writes_metrics_in_the_contract(pipeline: Path) -> None:
    for branch in ("image_ml", "text_ml"):
        metrics = json.loads((pipeline / "metrics" / f"{branch}.json").read_text())
        for split in ("test", "val"):
            assert 0.0 <= metrics[split]["roc_auc_macro"] <= 1.0
            assert metrics[split]["n_genres"] == 5
        assert metrics["seconds"]["fit"] > 0
    shown = json.loads(dvc(pipeline, "metrics", "show", "--json").stdout)
    assert any("metrics/text_ml.json" in str(v) for v in shown.values())


def test_nothing_changed_runs_nothing(pipeline: Path) -> None:
    assert ran(dvc(pipeline, "repro").stdout) == set()


def test_changing_one_branch_param_reruns_only_that_branch(pipeline: Path) -> None:
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["text_ml"]["n_estimators"] = 31
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    downstream = {"ensemble"} & set(yaml.safe_load((pipeline / "dvc.yaml").read_text())["stages"])
    assert ran(dvc(pipeline, "repro").stdout) == {"train_text_ml"} | downstream
