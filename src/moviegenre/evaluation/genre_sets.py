"""Genre sets: per-genre decision thresholds, and the set metrics the MM-IMDb literature reports.

Probabilities rank movies; a user wants the set of genres. A single 0.5 cut suits no genre
here (Drama is in half the movies, Western in 1%), so each genre gets its own threshold,
fitted on val in one of two ways (``THRESHOLD_METHODS``):

- ``rate``: one number for all genres, a factor f; each genre is predicted for the share of
  movies f times its val prevalence, which fixes its cut. The f that maximises val macro F1
  wins. One fitted number leans far less on which few positives of a rare genre val holds.
- ``per_genre``: each genre's cut is the one that maximises its own F1 on val: 21 fitted
  numbers, each resting on that genre's val positives alone.

Test is scored at those thresholds with F1 (macro, micro, samples), precision and recall,
which is what MM-IMDb papers quote.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

ThresholdMethod = Literal["rate", "per_genre"]
THRESHOLD_METHODS: tuple[str, ...] = get_args(ThresholdMethod)
RATE_FACTORS = tuple(round(0.5 + 0.1 * k, 2) for k in range(26))  # 0.5, 0.6, ..., 3.0


def best_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The cut on ``scores`` (predict the genre when score >= cut) that maximises F1 on one genre.

    Candidates are the distinct scores; the cut returned lies halfway between the chosen score
    and the next lower one, so scores a hair below the chosen one do not flip. A genre without
    positives gets 1.0 (never predicted), one whose best F1 is 0 the same.
    """
    positives = int(y_true.sum())
    if positives == 0:
        return 1.0
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], y_true[order].astype(np.float64)
    last_of_value = np.r_[ranked[1:] != ranked[:-1], True]  # cut after every run of equal scores
    true_positive = np.cumsum(hits)[last_of_value]
    predicted = np.flatnonzero(last_of_value) + 1.0
    f1 = 2 * true_positive / (predicted + positives)
    best = int(np.argmax(f1))
    if f1[best] <= 0:
        return 1.0
    values = ranked[last_of_value]
    below = values[best + 1] if best + 1 < len(values) else values[best] - 1e-6
    return float(round((values[best] + below) / 2, 8))


def fit_thresholds(y_true: np.ndarray, proba: np.ndarray, method: str = "per_genre") -> list[float]:
    """One threshold per genre (column), fitted by ``method`` (module docstring)."""
    if method == "rate":
        return fit_rate_thresholds(y_true, proba)
    if method != "per_genre":
        raise ValueError(f"unknown threshold method {method!r}; expected one of {', '.join(THRESHOLD_METHODS)}")
    return [best_threshold(y_true[:, g], proba[:, g]) for g in range(y_true.shape[1])]


def rate_thresholds(y_true: np.ndarray, proba: np.ndarray, factor: float) -> list[float]:
    """Per genre, the cut that predicts it for ``factor`` times its share of positives in ``y_true``
    (at least one movie, at most all); a genre without positives is never predicted (1.0)."""
    n = len(y_true)
    cuts = []
    for g in range(y_true.shape[1]):
        prevalence = float(y_true[:, g].mean())
        if prevalence == 0:
            cuts.append(1.0)
            continue
        rate = min(max(factor * prevalence, 1.0 / n), 1.0)
        cuts.append(float(np.quantile(proba[:, g], 1.0 - rate)))
    return cuts


def fit_rate_thresholds(y_true: np.ndarray, proba: np.ndarray) -> list[float]:
    """The ``rate_thresholds`` of the factor in ``RATE_FACTORS`` with the best macro F1 (the
    smallest of equal ones)."""
    best, best_cuts = -1.0, None
    for factor in RATE_FACTORS:
        cuts = rate_thresholds(y_true, proba, factor)
        score = macro_f1(y_true, apply_thresholds(proba, cuts))
        if score > best:
            best, best_cuts = score, cuts
    assert best_cuts is not None
    return best_cuts


def apply_thresholds(proba: np.ndarray, thresholds: list[float] | np.ndarray) -> np.ndarray:
    """Boolean genre sets; a NaN row (no branch saw the movie) gets the empty set."""
    return np.nan_to_num(proba, nan=-1.0) >= np.asarray(thresholds)[None, :]


def macro_f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """The macro F1 of genre sets, rounded as ``set_scores`` rounds it: the threshold search
    compares only this, so it computes none of the other four."""
    return round(float(f1_score(y_true.astype(int), predicted.astype(int), average="macro", zero_division=0)), 6)


def set_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 (macro, micro, samples), precision and recall (macro) of genre sets, rounded to 6 places."""
    y, p = y_true.astype(int), predicted.astype(int)
    values = {
        "f1_micro": f1_score(y, p, average="micro", zero_division=0),
        "f1_samples": f1_score(y, p, average="samples", zero_division=0),
        "precision_macro": precision_score(y, p, average="macro", zero_division=0),
        "recall_macro": recall_score(y, p, average="macro", zero_division=0),
    }
    return {"f1_macro": macro_f1(y_true, predicted)} | {name: round(float(value), 6) for name, value in values.items()}
