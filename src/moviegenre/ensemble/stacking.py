"""Stacking: a logistic regression per genre over the branches' probabilities, fitted on val.

A weighted mean gives every genre the same mix of branches; a stacker learns, per genre,
how far to trust each branch (posters say more about Animation than about Drama) and
recalibrates the result. It sees only val: test stays untouched. Its own val score would
be flattering if it were scored on the movies it was fitted on, so val probabilities come
from k-fold cross-validation (each fold predicted by a model fitted on the others) and the
model kept for test and prediction is the one fitted on all of val.

Features are the branches' logits: probabilities squeezed near 0 and 1 by a forest or a
sigmoid are spread out again, where a linear model can weigh them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

_EPS = 1e-6


def logits(stacked: np.ndarray) -> np.ndarray:
    clipped = np.clip(stacked, _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


@dataclass(frozen=True)
class Stacker:
    """Per genre: one coefficient per branch (in ``branches`` order) and an intercept."""

    branches: list[str]
    coef: list[list[float]]  # (genres, branches)
    intercept: list[float]  # (genres,)

    def predict(self, by_branch: dict[str, np.ndarray]) -> np.ndarray:
        x = logits(np.stack([by_branch[b] for b in self.branches], axis=-1))  # (n, genres, branches)
        z = np.einsum("ngb,gb->ng", x, np.asarray(self.coef)) + np.asarray(self.intercept)[None, :]
        return 1 / (1 + np.exp(-z))

    def to_json(self) -> dict:
        return {"branches": self.branches, "coef": self.coef, "intercept": self.intercept}


def _fit_genre(x: np.ndarray, y: np.ndarray, c: float) -> tuple[list[float], float]:
    if y.min() == y.max():  # one class: no slope to learn, predict the base rate
        rate = float(np.clip(y.mean(), _EPS, 1 - _EPS))
        return [0.0] * x.shape[1], float(np.log(rate / (1 - rate)))
    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    return [float(v) for v in model.coef_[0]], float(model.intercept_[0])


def fit_stacker(by_branch: dict[str, np.ndarray], y: np.ndarray, c: float) -> Stacker:
    """Stacker fitted on every row given (val)."""
    branches = list(by_branch)
    x = logits(np.stack([by_branch[b] for b in branches], axis=-1))
    fitted = [_fit_genre(x[:, g], y[:, g], c) for g in range(y.shape[1])]
    return Stacker(
        branches,
        [[round(v, 10) for v in coef] for coef, _ in fitted],
        [round(intercept, 10) for _, intercept in fitted],
    )


def out_of_fold(by_branch: dict[str, np.ndarray], y: np.ndarray, c: float, folds: int, seed: int) -> np.ndarray:
    """Each row's stacked probabilities from a stacker that never saw it (stratified per genre)."""
    branches = list(by_branch)
    x = logits(np.stack([by_branch[b] for b in branches], axis=-1))
    out = np.empty(y.shape, dtype=np.float64)
    for g in range(y.shape[1]):
        column = y[:, g]
        n_splits = int(min(folds, column.sum(), len(column) - column.sum()))
        if n_splits < 2:  # too few positives to hold any out: the base rate, as _fit_genre would
            out[:, g] = column.mean()
            continue
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for train, held in splitter.split(x[:, g], column):
            coef, intercept = _fit_genre(x[train, g], column[train], c)
            out[held, g] = 1 / (1 + np.exp(-(x[held, g] @ np.asarray(coef) + intercept)))
    return out
