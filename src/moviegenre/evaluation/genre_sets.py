"""Genre sets: per-genre decision thresholds, and the set metrics the MM-IMDb literature reports.

Probabilities rank movies; a user wants the set of genres. A single 0.5 cut suits no genre
here (Drama is in half the movies, Western in 1%), so each genre gets the threshold that
maximises its F1 on val, and test is scored at those thresholds with F1 (macro, micro,
samples), precision and recall, which is what MM-IMDb papers quote.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score


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


def fit_thresholds(y_true: np.ndarray, proba: np.ndarray) -> list[float]:
    """One F1-maximising threshold per genre (column)."""
    return [best_threshold(y_true[:, g], proba[:, g]) for g in range(y_true.shape[1])]


def apply_thresholds(proba: np.ndarray, thresholds: list[float] | np.ndarray) -> np.ndarray:
    """Boolean genre sets; a NaN row (no branch saw the movie) gets the empty set."""
    return np.nan_to_num(proba, nan=-1.0) >= np.asarray(thresholds)[None, :]


def set_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 (macro, micro, samples), precision and recall (macro) of genre sets, rounded to 6 places."""
    y, p = y_true.astype(int), predicted.astype(int)
    values = {
        "f1_macro": f1_score(y, p, average="macro", zero_division=0),
        "f1_micro": f1_score(y, p, average="micro", zero_division=0),
        "f1_samples": f1_score(y, p, average="samples", zero_division=0),
        "precision_macro": precision_score(y, p, average="macro", zero_division=0),
        "recall_macro": recall_score(y, p, average="macro", zero_division=0),
    }
    return {name: round(float(value), 6) for name, value in values.items()}
