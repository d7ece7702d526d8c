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
from moviegenre.ensemble.combine import choose_weights, combine, load_branches
from moviegenre.ensemble.model import EnsembleModel
from moviegenre.ensemble.run import run_ensemble
from moviegenre.ensemble.settings import EnsembleSettings
from moviegenre.ensemble.stacking import fit_stacker, out_of_fold
from moviegenre.evaluation import probabilities
from moviegenre.evaluation.genre_sets import (
    apply_thresholds,
    best_threshold,
    fit_thresholds,
    rate_thresholds,
    set_scores,
)
from moviegenre.evaluation.metrics import (
    bootstrap_interval,
    macro_auc_ranks,
    resampled_macro_auc,
    scores_by_split,
    split_scores,
)

PATHS = ProjectPaths(Path("."))
PREDICTIONS = Path("data/predictions")

BRANCHES = ["image_ml", "text_ml", "image_dl", "text_dl"]
SETTINGS = EnsembleSettings(
    method="val",
    average="probabilities",
    weights=dict.fromkeys(BRANCHES, 1.0),
    branches=tuple(BRANCHES),
    stack_C=1.0,
    stack_folds=3,
    thresholds="rate",
)


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
    unnamed = choose_weights("weighted", {"image_ml": 1, "text_ml": 1, "image_dl": 2}, by_branch, y_val)
    assert unnamed == {"image_ml": 0.2, "text_ml": 0.2, "image_dl": 0.4, "text_dl": 0.2}  # text_dl: 1 by default


def test_a_mean_of_logits_is_a_probability_that_a_confident_branch_moves_further() -> None:
    by_branch = {"a": np.array([[0.99, 0.5], [np.nan, np.nan]]), "b": np.array([[0.5, 0.2], [0.3, 0.6]])}
    weights = {"a": 0.75, "b": 0.25}
    by_logits = combine(by_branch, weights, "logits")
    logit = np.log(0.99 / 0.01) * 0.75  # b's 0.5 adds a logit of 0
    np.testing.assert_allclose(by_logits[0, 0], 1 / (1 + np.exp(-logit)))
    assert by_logits[0, 0] > combine(by_branch, weights)[0, 0]  # 0.985 against 0.8675
    np.testing.assert_allclose(by_logits[1], [0.3, 0.6])  # a saw nothing: b's alone, renormalised
    assert np.isnan(combine({"a": np.full((1, 2), np.nan)}, {"a": 1.0}, "logits")).all()


def test_weights_fitted_on_logits_favour_the_good_branches(branch_files: dict[str, np.ndarray]) -> None:
    table, genres = load_prepared(PATHS.prepared)
    scored = table[table["split"].isin(["val", "test"])]
    is_val = (scored["split"] == "val").to_numpy()
    y_val = label_matrix(scored.loc[is_val, "genres"], genres)
    fitted = choose_weights("val", {}, {b: p[is_val] for b, p in branch_files.items()}, y_val, "logits")
    assert sum(fitted.values()) == pytest.approx(1.0) and min(fitted.values()) >= 0
    assert fitted["text_ml"] + fitted["text_dl"] > fitted["image_ml"] + fitted["image_dl"]
    metrics = run_ensemble(SETTINGS.model_copy(update={"average": "logits"}), 0, PATHS)
    assert metrics["average"] == "logits" and EnsembleModel.load(PATHS.model("ensemble")).average == "logits"
    assert metrics["test"]["roc_auc_macro"] > 0.8


def test_ensemble_writes_metrics_table_roc_and_figures(branch_files: dict[str, np.ndarray]) -> None:
    metrics = run_ensemble(SETTINGS, 0, PATHS)
    written = json.loads(Path("metrics/ensemble.json").read_text())
    assert written == metrics
    assert set(written) == {"test", "val", "method", "average", "weights"}
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
    roc = pd.DataFrame(json.loads(Path("plots/roc.json").read_text()))
    assert list(roc.columns) == ["branch", "fpr", "tpr"] and list(dict.fromkeys(roc["branch"])) == [
        *BRANCHES,
        "ensemble",
    ]
    for _, points in roc.groupby("branch"):
        assert len(points) == 101 and points["fpr"].iloc[0] == 0 and points.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]
        assert points["tpr"].is_monotonic_increasing
    curves = pd.DataFrame(json.loads(Path("plots/thresholds.json").read_text()))
    assert set(curves["measure"]) == {"precision", "recall", "F1"} and set(curves["genre"]) <= set(genres)
    assert curves["value"].between(0, 1).all() and curves["threshold"].between(0, 1).all()
    recall = curves[curves["measure"] == "recall"].sort_values(["genre", "threshold"])
    assert all(g["value"].is_monotonic_decreasing for _, g in recall.groupby("genre"))  # a higher cut recalls less
    fitted = dict(zip(genres, EnsembleModel.load(PATHS.model("ensemble")).combiners[0].thresholds, strict=True))
    assert {g: rows["fitted"].unique().tolist() for g, rows in curves.groupby("genre")} == {
        g: [round(fitted[g], 4)] for g in set(curves["genre"])
    }  # the threshold the full ensemble fitted on val, whose probabilities the curves are of
    for png in ("plots/per_genre_auc.png", "plots/macro_auc.png"):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ensemble = pd.read_parquet("data/ensemble/predictions.parquet")
    assert list(ensemble.columns) == ["id", "split", *genres]


def test_leaving_branches_out(branch_files: dict[str, np.ndarray]) -> None:
    metrics = run_ensemble(SETTINGS.model_copy(update={"method": "mean", "branches": ("text_ml", "text_dl")}), 0, PATHS)
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


@pytest.mark.parametrize("labels", [np.int64, bool, np.float32])
def test_each_resample_scores_the_float_macro_auc_ranks_gives_its_rows(labels: type) -> None:
    """Ties, a genre with one class in some resamples, a never-positive genre, a NaN score: the
    values from draw counts are the very floats of ranking each resample's rows."""
    rng = np.random.default_rng(4)
    y = np.column_stack([rng.random(40) < 0.3, rng.random(40) < 0.05, np.zeros(40, bool), rng.random(40) < 0.5])
    scores = np.round(rng.random((40, 4)), 1)  # many ties
    scores[7, 3] = np.nan
    draws = [rng.integers(0, 40, 40) for _ in range(300)]
    counts = np.stack([np.bincount(rows, minlength=40) for rows in draws])
    got = resampled_macro_auc(y.astype(labels), scores, counts)
    want = np.array([macro_auc_ranks(y[rows].astype(labels), scores[rows]) for rows in draws])
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got).any() and not np.isnan(got).all()  # the resamples that drew movie 7, and the rest


def test_threshold_maximises_f1_and_sits_between_scores() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1])
    # cutting after 0.6 catches all three positives with one false one: F1 6/7, the best cut
    assert best_threshold(y, scores) == pytest.approx(0.45)
    assert best_threshold(np.zeros(4), np.arange(4.0)) == 1.0  # no positive: never predicted
    tied = best_threshold(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.1]))
    assert 0.1 < tied < 0.5  # equal scores are cut together, never split


def test_rate_thresholds_predict_each_genre_at_factor_times_its_prevalence() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((200, 3), dtype=int)
    y[:20, 0], y[:100, 1] = 1, 1  # prevalence 0.1 and 0.5; genre 2 has no positive
    proba = rng.random((200, 3))
    cuts = rate_thresholds(y, proba, factor=1.5)
    predicted = apply_thresholds(proba, cuts)
    assert predicted[:, 0].sum() == 30 and predicted[:, 1].sum() == 150  # 1.5 x 20, 1.5 x 100 movies
    assert cuts[2] == 1.0 and not predicted[:, 2].any()  # no positive: never predicted
    assert apply_thresholds(proba, rate_thresholds(y, proba, factor=0.001))[:, 0].sum() == 1  # at least one movie
    assert apply_thresholds(proba, rate_thresholds(y, proba, factor=3.0))[:, 1].all()  # at most all


def test_rate_fit_chooses_the_factor_with_the_best_macro_f1() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((300, 4)) < [0.05, 0.1, 0.3, 0.5]).astype(int)
    proba = np.clip(y * 0.3 + rng.random(y.shape) * 0.8, 0, 1)
    fitted = fit_thresholds(y, proba, "rate")

    def f1(cuts: list[float]) -> float:
        return set_scores(y, apply_thresholds(proba, cuts))["f1_macro"]

    assert all(f1(fitted) >= f1(rate_thresholds(y, proba, f / 10)) for f in range(5, 31))
    assert fitted in [rate_thresholds(y, proba, f / 10) for f in range(5, 31)]
    assert fit_thresholds(y, proba, "per_genre") == [best_threshold(y[:, g], proba[:, g]) for g in range(4)]
    with pytest.raises(ValueError, match="per_genre"):
        fit_thresholds(y, proba, "quantile")


def test_genre_sets_scores_match_sklearn_and_nan_rows_are_empty() -> None:
    proba = np.array([[0.9, 0.2], [0.4, 0.7], [np.nan, np.nan]])
    sets = apply_thresholds(proba, [0.5, 0.5])
    assert sets.tolist() == [[True, False], [False, True], [False, False]]
    y = np.array([[1, 0], [1, 1], [0, 1]])
    scores = set_scores(y, sets)
    assert set(scores) == {"f1_macro", "f1_micro", "f1_samples", "precision_macro", "recall_macro"}
    assert scores["precision_macro"] == 1.0 and scores["recall_macro"] == pytest.approx(0.5)


def test_stacker_learns_which_branch_to_trust_per_genre() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((400, 2)) < 0.3).astype(int)
    informative = 1 / (1 + np.exp(-(y * 3 - 1.5 + rng.normal(0, 1, y.shape))))
    noise = rng.random(y.shape)
    # branch a knows genre 0, branch b knows genre 1
    by_branch = {"a": np.c_[informative[:, 0], noise[:, 1]], "b": np.c_[noise[:, 0], informative[:, 1]]}
    stacker = fit_stacker(by_branch, y, c=1.0)
    coef = np.asarray(stacker.coef)
    assert coef[0, 0] > 5 * abs(coef[0, 1]) and coef[1, 1] > 5 * abs(coef[1, 0])
    oof = out_of_fold(by_branch, y, c=1.0, folds=5, seed=0)
    assert macro_auc_ranks(y, oof) > 0.85
    assert np.array_equal(oof, out_of_fold(by_branch, y, c=1.0, folds=5, seed=0))  # seeded


@pytest.mark.parametrize("method", ["val", "stack"])
def test_ensemble_model_saves_combiners_per_branch_set(branch_files: dict[str, np.ndarray], method: str) -> None:
    settings = SETTINGS.model_copy(update={"method": method})
    metrics = run_ensemble(settings, 0, PATHS)
    for key in ("f1_macro", "f1_micro", "f1_samples", "precision_macro", "recall_macro"):
        assert 0.0 < metrics["test"][key] <= 1.0
    assert metrics["method"] == method and ("weights" in metrics) == (method == "val")
    model = EnsembleModel.load(PATHS.model("ensemble"))
    assert [c.branches for c in model.combiners] == [BRANCHES, ["image_ml", "image_dl"], ["text_ml", "text_dl"]]
    # the stage's test probabilities are what the saved model gives
    table, genres = load_prepared(PATHS.prepared)
    test_rows = table[table["split"] == "test"]
    by_branch = {b: p[(table.loc[table["split"].isin(["val", "test"]), "split"] == "test").to_numpy()]
                 for b, p in branch_files.items()}  # fmt: skip
    proba, sets = model.predict(by_branch)
    stored = pd.read_parquet("data/ensemble/predictions.parquet")
    np.testing.assert_allclose(proba, stored.loc[stored["split"] == "test", genres].to_numpy(), atol=1e-9)
    assert sets.shape == (len(test_rows), len(genres))
    # a plot-only movie goes through the plot branches' own combiner and thresholds
    plot_only = {b: (np.full_like(p, np.nan) if b.startswith("image") else p) for b, p in by_branch.items()}
    proba_plot, sets_plot = model.predict(plot_only)
    combiner = model.combiner_for(["text_ml", "text_dl"])
    assert combiner is not None
    np.testing.assert_allclose(proba_plot, combiner.proba({b: by_branch[b] for b in ("text_ml", "text_dl")}))
    assert np.array_equal(sets_plot, proba_plot >= np.asarray(combiner.thresholds))
    nobody = {b: np.full_like(p, np.nan) for b, p in by_branch.items()}
    assert np.isnan(model.predict(nobody)[0]).all() and not model.predict(nobody)[1].any()


def test_stack_val_score_is_out_of_fold(branch_files: dict[str, np.ndarray]) -> None:
    """Scored on the movies it was fitted on, a stacker would flatter itself on val."""
    stack = run_ensemble(SETTINGS.model_copy(update={"method": "stack"}), 0, PATHS)
    table, genres = load_prepared(PATHS.prepared)
    scored = table[table["split"].isin(["val", "test"])]
    is_val = (scored["split"] == "val").to_numpy()
    y_val = label_matrix(scored.loc[is_val, "genres"], genres)
    in_sample = fit_stacker({b: p[is_val] for b, p in branch_files.items()}, y_val, SETTINGS.stack_C)
    flattering = macro_auc_ranks(y_val, in_sample.predict({b: p[is_val] for b, p in branch_files.items()}))
    assert stack["val"]["roc_auc_macro"] < flattering
