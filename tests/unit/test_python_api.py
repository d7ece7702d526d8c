"""docs/python-api.md's examples run as written, in order, against a tiny trained project.

The page says its examples run in the project directory with `poster.jpg` and `plot.txt`
there: the fixture puts them there, and the test runs every ```python block of the page in
one namespace, as a reader would paste them one after the other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import PROJECT_ROOT
from helpers.tiny_project import BRANCHES, copy_of_tiny_project

PAGE = PROJECT_ROOT / "docs" / "python-api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
PLOT = "ghost blood scream haunted night in the city"


def python_blocks() -> list[str]:
    return BLOCK.findall(PAGE.read_text())


@pytest.fixture(scope="module")
def project(trained_tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny project with the poster and plot files the page's examples read."""
    from helpers.synthetic import poster_bytes

    root = copy_of_tiny_project(trained_tiny_project, tmp_path_factory.mktemp("python-api") / "project")
    (root / "poster.jpg").write_bytes(poster_bytes(["Horror"], 7))
    (root / "plot.txt").write_text(PLOT, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def ran(project: Path) -> dict[str, Any]:
    """The namespace after every block of the page ran, and what the blocks printed."""
    import contextlib
    import io

    namespace: dict[str, Any] = {"__name__": "python_api_page"}
    printed = io.StringIO()
    with contextlib.chdir(project), contextlib.redirect_stdout(printed):
        for number, block in enumerate(python_blocks(), 1):
            exec(compile(block, f"{PAGE.name}, python block {number}", "exec"), namespace)
    namespace["printed"] = printed.getvalue()
    return namespace


def test_the_page_has_an_example_of_each_use() -> None:
    code = "\n".join(python_blocks())
    for call in ("Predictor(ProjectPaths(", ".predict(", ".genre_sets(", "pd.DataFrame(", "except MovieGenreError"):
        assert call in code, call


def test_loading_and_one_movie_give_what_the_page_says(ran: dict[str, Any]) -> None:
    predictor = ran["predictor"]
    assert list(predictor.branches) == BRANCHES
    genres = predictor.genres
    assert len(ran["probabilities"]) == len(genres) == len(ran["in_set"])
    assert ran["in_set"].dtype == bool
    assert set(ran["genre_set"]) <= set(genres)
    assert str(genres) in ran["printed"]
    # the movie has a poster and a plot, so every branch scored it, poster branches first
    assert "['image_ml', 'image_dl', 'text_ml', 'text_dl', 'text_encoder']" in ran["printed"]


def test_the_dataframe_example_gives_the_documented_columns(ran: dict[str, Any]) -> None:
    predictor, result, scores = ran["predictor"], ran["result"], ran["scores"]
    genres = predictor.genres
    by_branch = [f"{branch}:{genre}" for branch in BRANCHES for genre in genres]
    assert list(result.columns) == ["title", "genres", *genres, *by_branch]
    assert len(result) == 3
    ensemble = result[genres].to_numpy()
    assert np.isfinite(ensemble).all() and ((ensemble >= 0) & (ensemble <= 1)).all()
    sets = predictor.genre_sets(scores)
    assert result["genres"].tolist() == ["|".join(np.array(genres)[row]) for row in sets]
    # the plot-only movie has no poster branch's probabilities, the poster-only one no plot branch's
    assert result.loc[1, [f"image_ml:{g}" for g in genres]].isna().all()
    assert result.loc[1, [f"text_ml:{g}" for g in genres]].notna().all()
    assert result.loc[2, [f"text_encoder:{g}" for g in genres]].isna().all()
    assert result.loc[0, by_branch].notna().all()


def test_the_error_examples_print_one_line_each(ran: dict[str, Any]) -> None:
    printed = ran["printed"]
    assert "error: missing-poster.jpg: not a readable image (" in printed
    assert "error: not-a-project/data/prepared/genres.json: not found (run `dvc repro prepare`)" in printed


OP_LIBRARY_SPY = """
import importlib.abc, json, sys, threading
from pathlib import Path

threads = []


class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "tensorflow_text":
            threads.append(threading.current_thread().name)
        return None


sys.meta_path.insert(0, Spy())
from moviegenre.core.paths import ProjectPaths
from moviegenre.predict.predictor import Predictor

Predictor(ProjectPaths(Path("."))).predict(["poster.jpg"], [Path("plot.txt").read_text()])
print(json.dumps(threads))
"""


def test_the_op_library_loads_before_the_featurizer_threads_start(project: Path) -> None:
    """tensorflow_text registers TensorFlow ops on import; registered while a branch predicts in
    another thread, that can deadlock TensorFlow, so a Predictor imports it in its own thread first."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", OP_LIBRARY_SPY], cwd=project, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert threads and threads[0] == "MainThread", threads
