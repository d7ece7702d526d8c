"""Ensemble: alignment checks, the three methods, and the files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import write_json
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import label_matrix, load_prepared
from moviegenre.ensemble.combine import choose_weights, load_branches
from moviegenre.ensemble.run import run_ensemble
from moviegenre.evaluation import probabilities
from moviegenre.evaluation.metrics import bootstrap_interval, macro_auc_ranks, scores_by_split, split_scores

PATHS = ProjectPaths(Path("."))
PREDICTIONS = Path("data/predictions")

BRANCHES = ["image_ml", "text_ml", "image_dl", "text_dl"]
SETTINGS = {"method": "val", "weights": dict.fromkeys(BRANCHES, 1.0), "branches": BRANCHES}


@pytest.fixture
def branch_files(prepared_project: Path) -> dict[str, np.ndarray]:
    """Probability files for four fake branches of known quality on the prepared movies."""
    table, genres = load_prepared(PATHS.prepared)
    scored = table[table["split"].isin(["val", "test"])]
    labels = label_matrix(scored["genres"], genres).astype(float)
    rng = np.random.default_rng(0)
    noise = {"image_ml": 2.0, "text_ml": 0.6, "image_dl": 3.0, "text_dl": 0.8}
    written = {}
    for branch, sigma in noise.items():
        proba = 1 / (1 + np.exp(-(labels * 2 - 1 + rng.normal(0, sigma, labels.shape))))
        probabilities.write(PREDICTIONS / f"{branch}.parquet", scored["id"], scored["split"], proba, genres)
        write_json(f"metrics/{branch}.json", scores_by_split(labels, proba, scored["split"].to_numpy(), 0))
        written[branch] = proba
    return written


def test_fast_macro_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((80, 4)) < 0.3).astype(int)
    y[:, 3] = 0  # unscorable genre: left out of both
    scores = rng.random((80, 4)) + y * 0.3
    assert macro_auc_ranks(y, scores) == pytest.approx(split_scores(y, scores)["roc_auc_macro"], abs=1e-6)


def test_weights_by_method(branch_files: dict[str, np.ndarray]) -> None:
    table, genres = load_prepared(PATHS.prepared)
    scored = table[table["split"].isin(["val", "test"])]
    is_val = (scored["split"] == "val").to_numpy()
    y_val = label_matrix(scored.loc[is_val, "genres"], genres)
    by_branch = {b: p[is_val] for b, p in branch_files.items()}
    assert choose_weights("mean", {}, by_branch, y_val) == dict.fromkeys(BRANCHES, 0.25)
    weighted = choose_weights("weighted", {"image_ml": 1, "text_ml": 3, "image_dl": 0, "text_dl": 0}, by_branch, y_val)
    assert weighted == {"image_ml": 0.25, "text_ml": 0.75, "image_dl": 0.0, "text_dl": 0.0}
    fitted = choose_weights("val", {}, by_branch, y_val)
    assert sum(fitted.values()) == pytest.approx(1.0) and min(fitted.values()) >= 0
    assert fitted["text_ml"] + fitted["text_dl"] > fitted["image_ml"] + fitted["image_dl"]  # the good branches win
    with pytest.raises(MovieGenreError, match="no weight for branch text_dl"):
        choose_weights("weighted", {"image_ml": 1, "text_ml": 1, "image_dl": 1}, by_branch, y_val)


def test_ensemble_writes_metrics_table_roc_and_figures(branch_files: dict[str, np.ndarray]) -> None:
    metrics = run_ensemble(SETTINGS, 0, PATHS)
    written = json.loads(Path("metrics/ensemble.json").read_text())
    assert written == metrics
    assert set(written) == {"test", "val", "weights"}
    low, high = written["test"]["roc_auc_macro_ci95"]
    assert 0.5 < low <= written["test"]["roc_auc_macro"] <= high <= 1.0
    summary = json.loads(Path("metrics/summary.json").read_text())
    assert list(summary) == [*BRANCHES, "ensemble", "val"] and list(summary["val"]) == [*BRANCHES, "ensemble"]
    assert summary["ensemble"] == written["test"]["roc_auc_macro"]
    assert set(written["weights"]) == set(BRANCHES)
    table = pd.read_csv("metrics/per_genre_auc.csv")
    _, genres = load_prepared(PATHS.prepared)
    assert list(table.columns) == ["genre", "test_positives", *BRANCHES, "ensemble"]
    assert table["genre"].tolist() == genres
    best_branch = max(table[b].mean() for b in BRANCHES)
    assert written["test"]["roc_auc_macro"] >= best_branch - 0.02
    for name in [*BRANCHES, "ensemble"]:
        points = json.loads(Path(f"plots/roc/{name}.json").read_text())
        assert len(points) == 101 and points[0]["fpr"] == 0 and points[-1] == {"fpr": 1.0, "tpr": 1.0}
    for png in ("plots/per_genre_auc.png", "plots/macro_auc.png"):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ensemble = pd.read_parquet("data/predictions/ensemble.parquet")
    assert list(ensemble.columns) == ["id", "split", *genres]


def test_leaving_branches_out(branch_files: dict[str, np.ndarray]) -> None:
    metrics = run_ensemble(SETTINGS | {"method": "mean", "branches": ["text_ml", "text_dl"]}, 0, PATHS)
    assert metrics["weights"] == {"text_ml": 0.5, "text_dl": 0.5}


def test_misaligned_branches_are_an_error(branch_files: dict[str, np.ndarray]) -> None:
    _, genres = load_prepared(PATHS.prepared)
    path = PREDICTIONS / "image_dl.parquet"
    frame = pd.read_parquet(path)
    frame.iloc[::-1].to_parquet(path, index=False)  # same movies, another order
    with pytest.raises(MovieGenreError, match=r"image_dl\.parquet: its movies differ from image_ml's"):
        load_branches(BRANCHES, genres, PREDICTIONS)
    frame[["id", "split", *genres[::-1]]].to_parquet(path, index=False)  # genres in another order
    with pytest.raises(MovieGenreError, match="do not match the genre vocabulary"):
        load_branches(BRANCHES, genres, PREDICTIONS)


def test_bootstrap_interval_is_seeded_and_narrows_with_more_movies() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random((400, 3)) < 0.3).astype(int)
    scores = rng.random((400, 3)) + y * 0.5
    first = bootstrap_interval(y, scores, seed=1, resamples=200)
    assert first == bootstrap_interval(y, scores, seed=1, resamples=200)
    assert first[0] < macro_auc_ranks(y, scores) < first[1]
    small = bootstrap_interval(y[:60], scores[:60], seed=1, resamples=200)
    assert small[1] - small[0] > first[1] - first[0]
