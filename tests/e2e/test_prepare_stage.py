"""End to end: `dvc repro prepare` in a copy of the project, then a no-op rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.project import copy_project, dvc

pytestmark = pytest.mark.e2e


def test_repro_prepare_then_nothing_to_do(tmp_path: Path, mmimdb_archive: Path) -> None:
    repo = copy_project(
        tmp_path / "repo",
        {"data": {"source": str(mmimdb_archive), "sha256": None}, "prepare": {"min_genre_count": 2}},
    )
    first = dvc(repo, "repro", "prepare")
    assert "Running stage 'download'" in first.stdout and "Running stage 'prepare'" in first.stdout

    metrics = json.loads((repo / "metrics" / "data.json").read_text())
    assert metrics["movies_in"] == 60 and metrics["with_poster"] == 60
    assert sum(metrics["split"][s] for s in ("train", "val", "test")) == 60
    table = pd.read_parquet(repo / "data" / "prepared" / "movies.parquet")
    assert list(table.columns) == ["id", "title", "year", "plot", "genres", "poster", "split"]

    second = dvc(repo, "repro", "prepare")
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout

    # A bad param fails the stage with the key's name and writes nothing new.
    params = (repo / "params.yaml").read_text().replace("min_genre_count: 2", "min_genre_count: -3")
    (repo / "params.yaml").write_text(params)
    failed = dvc(repo, "repro", "prepare", check=False)
    assert failed.returncode != 0
    expected = "error: params.yaml: 'prepare.min_genre_count' must be in [1, inf], not -3"
    assert expected in failed.stderr
