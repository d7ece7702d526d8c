"""The linear branch on plots (``text_linear``): one logistic regression per genre on TF-IDF.

A bag of words and bigrams with a linear model per genre ranks plots by their vocabulary,
term by term: differently from the forest on the same TF-IDF (which splits on a few terms at
a time) and from the sentence encoder (which reads meaning, not words), and the ensemble gains
from the difference.

The fitted model is two plain arrays, ``coef`` (genres x terms) and ``intercept``, saved as
``.npy`` files rather than a pickle: loading needs no scikit-learn and runs no code, and the
same fit gives the same bytes. Prediction is the sigmoid of ``x @ coef.T + intercept``, the
arithmetic of scikit-learn's ``predict_proba`` for a binary logistic regression.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.special import expit

from moviegenre.branches.base import Branch, FitContext, ModelSpec, Rows
from moviegenre.config.settings import Number, Settings
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

COEF, INTERCEPT = "coef.npy", "intercept.npy"
_CONSTANT_LOGIT = 30.0  # a genre seen only negative (or only positive) in training: probability ~0 (or ~1)


class LinearSettings(Settings):
    features: Literal["tfidf"]
    C: Number = Field(ge=1e-6, le=1e6)  # inverse L2 strength, as scikit-learn's
    class_weight: Literal["balanced"] | None
    max_iter: int = Field(ge=10, le=100_000)  # lbfgs iterations per genre


def _fit_genre(x: Any, y: np.ndarray, settings: LinearSettings, seed: int) -> tuple[np.ndarray, float]:
    """One genre's coefficients and intercept; a genre with one class in training gets a constant."""
    if y.min() == y.max():
        return np.zeros(x.shape[1]), _CONSTANT_LOGIT if y[0] else -_CONSTANT_LOGIT
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=settings.C, class_weight=settings.class_weight, max_iter=settings.max_iter, random_state=seed
    ).fit(x, y)
    if model.n_iter_[0] >= settings.max_iter:
        log.warning("a genre's fit stopped at text_linear.max_iter=%d before converging", settings.max_iter)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


class TextLinear(Branch[LinearSettings]):
    """Logistic regression per genre on TF-IDF of plots (plot-only movies train too)."""

    name = "text_linear"
    modality = "plot"
    feature_set = "text"
    Settings = LinearSettings
    model_file = COEF

    def __init__(
        self, settings: LinearSettings | Mapping[str, object], seed: int, spec: ModelSpec | None = None
    ) -> None:
        super().__init__(settings, seed, spec)
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None

    def reads(self) -> tuple[str, ...]:
        return (self.settings.features,)

    def inputs(self, arrays: Mapping[str, Any]) -> sp.csr_matrix:
        return sp.csr_matrix(arrays[self.settings.features])

    def fit(self, train: Rows, val: Rows, context: FitContext) -> dict[str, Any]:
        """Each genre on its own (lbfgs is deterministic: the seed changes nothing), in
        ``runtime.n_jobs`` processes; the result does not depend on their number. ``C`` is a
        setting chosen on val beforehand, so the fit itself reads ``train`` only."""
        from joblib import Parallel, delayed

        x_train, y_train = sp.csr_matrix(train.x), train.labels
        absent = [g for g, n in zip(context.genres, y_train.sum(axis=0), strict=True) if n == 0]
        if absent:
            log.warning("genres with no positive training movie (predicted 0): %s", ", ".join(absent))
        fitted = Parallel(n_jobs=context.runtime.n_jobs)(
            delayed(_fit_genre)(x_train, y_train[:, g], self.settings, self.seed) for g in range(y_train.shape[1])
        )
        self.coef = np.stack([coef for coef, _ in fitted])
        self.intercept = np.array([intercept for _, intercept in fitted], dtype=np.float64)
        return {}

    def predict_proba(self, x: Any) -> np.ndarray:
        assert self.coef is not None and self.intercept is not None
        x = sp.csr_matrix(x)
        if x.shape[1] != self.coef.shape[1]:
            raise ValueError(f"expected {self.coef.shape[1]} features, got shape {x.shape}")
        return expit(np.asarray(x @ self.coef.T) + self.intercept)

    def save_model(self, directory: Path) -> None:
        assert self.coef is not None and self.intercept is not None
        np.save(directory / COEF, self.coef, allow_pickle=False)
        np.save(directory / INTERCEPT, self.intercept, allow_pickle=False)

    def load_model(self, directory: Path) -> None:
        coef = np.load(directory / COEF, allow_pickle=False)
        intercept = np.load(directory / INTERCEPT, allow_pickle=False)
        if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or not np.isfinite(coef).all():
            raise MovieGenreError(f"{directory}: {COEF} {coef.shape} and {INTERCEPT} {intercept.shape} do not fit")
        self.coef, self.intercept = coef, intercept
