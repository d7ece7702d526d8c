"""Scores in the shape of the metrics contract (docs/design.md), with their bootstrap intervals.

A genre with only one class among the scored movies has no ROC-AUC; it is left out of the
macro average and counted, never averaged in as NaN. Each macro AUC comes with a seeded
95% bootstrap interval over the scored movies, so that a reader can tell a change from the
noise of a 671-movie test set.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

BOOTSTRAP_RESAMPLES = 1000


def scorable(y_true: np.ndarray) -> np.ndarray:
    """Columns with both a positive and a negative movie."""
    positives = y_true.sum(axis=0)
    return (positives > 0) & (positives < len(y_true))


def per_genre_auc(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """ROC-AUC of each column; NaN where a genre cannot be scored (kept out of averages)."""
    ok = scorable(y_true)
    auc = np.full(y_true.shape[1], np.nan)
    for column in np.flatnonzero(ok):
        auc[column] = roc_auc_score(y_true[:, column], proba[:, column])
    return auc


def macro_auc_ranks(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC by the rank-sum formula over scorable genres: fast, for searches and resampling."""
    positives = y_true.sum(axis=0)
    ok = (positives > 0) & (positives < len(y_true))
    if not ok.any():
        return float("nan")
    ranks = rankdata(scores[:, ok], axis=0)
    pos = positives[ok]
    neg = len(y_true) - pos
    rank_sum = (ranks * y_true[:, ok]).sum(axis=0)
    return float(np.mean((rank_sum - pos * (pos + 1) / 2) / (pos * neg)))


def bootstrap_interval(
    y_true: np.ndarray, proba: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[float]:
    """95% percentile interval of the macro ROC-AUC over movies drawn with replacement.

    The movies are drawn one resample at a time, so a seed draws what it always drew; each
    resample's value is bit for bit ``macro_auc_ranks`` of its rows (``resampled_macro_auc``).
    """
    n = len(y_true)
    if n == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.integers(0, n, n) for _ in range(resamples)])
    counts = np.bincount((np.arange(resamples)[:, None] * n + draws).ravel(), minlength=resamples * n)
    values = resampled_macro_auc(y_true, proba, counts.reshape(resamples, n))
    values = values[~np.isnan(values)]
    if not len(values):
        return [0.0, 0.0]
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def resampled_macro_auc(y_true: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``macro_auc_ranks`` of each resample, given as how often it drew each movie (resamples x
    movies), without building the resamples: per genre the movies are sorted once, and a movie's
    rank in a resample is the count drawn below its score plus half of those drawn at it. Ranks
    and rank sums are then whole or half numbers, exact in any order, and each mean is taken over
    the same genres in the same order, so every value is the float ``macro_auc_ranks`` gives."""
    n = counts.shape[1]
    genres = y_true.shape[1]
    per_genre = np.zeros((len(counts), genres))
    ok = np.zeros((len(counts), genres), dtype=bool)
    for genre in range(genres):
        column, labels = scores[:, genre], np.asarray(y_true[:, genre], dtype=np.int64)
        order = np.argsort(column, kind="stable")
        ranked = column[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # a run of equal scores: one tie
        drawn = counts[:, order]
        at = np.add.reduceat(drawn, starts, axis=1)
        positive_at = np.add.reduceat(drawn * labels[order], starts, axis=1)
        rank = (np.cumsum(at, axis=1) - at) + (at + 1) / 2
        positives = positive_at.sum(axis=1)
        ok[:, genre] = (positives > 0) & (positives < n)
        rank_sum = (positive_at * rank).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # a genre with one class: never averaged
            per_genre[:, genre] = (rank_sum - positives * (positives + 1) / 2) / (positives * (n - positives))
        missing = np.isnan(column)
        if missing.any():  # a resample that drew a NaN score has NaN ranks, as rankdata gives them
            per_genre[counts[:, missing].sum(axis=1) > 0, genre] = np.nan
    return np.array([np.mean(per_genre[i][ok[i]]) if ok[i].any() else np.nan for i in range(len(counts))])


def macro_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The contract's ``roc_auc_macro``: the mean over scorable genres, to 6 decimals (0.0 if none)."""
    if not scorable(y_true).any():
        return 0.0
    return round(float(np.nanmean(per_genre_auc(y_true, proba))), 6)


def split_scores(y_true: np.ndarray, proba: np.ndarray, seed: int = 0) -> dict[str, float | int | list[float]]:
    ok = scorable(y_true)
    if not ok.any():
        return {"roc_auc_macro": 0.0, "roc_auc_macro_ci95": [0.0, 0.0], "roc_auc_micro": 0.0,
                "n_movies": len(y_true), "n_genres": 0}  # fmt: skip
    return {
        "roc_auc_macro": macro_auc(y_true, proba),
        "roc_auc_macro_ci95": bootstrap_interval(y_true, proba, seed),
        "roc_auc_micro": round(float(roc_auc_score(y_true[:, ok].ravel(), proba[:, ok].ravel())), 6),
        "n_movies": len(y_true),
        "n_genres": int(ok.sum()),
    }


def scores_by_split(y_true: np.ndarray, proba: np.ndarray, split: np.ndarray, seed: int) -> dict[str, dict]:
    """``{"test": {...}, "val": {...}}`` per the metrics contract (docs/design.md)."""
    return {name: split_scores(y_true[split == name], proba[split == name], seed) for name in ("test", "val")}
