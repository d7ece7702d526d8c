"""Scores in the shape of DESIGN.md's metrics contract.

A genre with only one class among the scored movies has no ROC-AUC; it is left out of the
macro average and counted, never averaged in as NaN.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


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


def split_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float | int]:
    ok = scorable(y_true)
    if not ok.any():
        return {"roc_auc_macro": 0.0, "roc_auc_micro": 0.0, "n_movies": len(y_true), "n_genres": 0}
    return {
        "roc_auc_macro": round(float(np.nanmean(per_genre_auc(y_true, proba))), 6),
        "roc_auc_micro": round(float(roc_auc_score(y_true[:, ok].ravel(), proba[:, ok].ravel())), 6),
        "n_movies": len(y_true),
        "n_genres": int(ok.sum()),
    }


def branch_metrics(y_true: np.ndarray, proba: np.ndarray, split: np.ndarray, fit_s: float, predict_s: float) -> dict:
    """``{"test": {...}, "val": {...}, "seconds": {"fit", "predict"}}`` per DESIGN.md."""
    return {
        "test": split_scores(y_true[split == "test"], proba[split == "test"]),
        "val": split_scores(y_true[split == "val"], proba[split == "val"]),
        "seconds": {"fit": round(fit_s, 3), "predict": round(predict_s, 3)},
    }
