"""The classical branches: ExtraTrees on poster features, RandomForest on TF-IDF of plots.

scikit-learn's forests fit all genres at once (multi-output trees). Their ``predict_proba``
returns one array per genre whose columns are the classes seen in training, so a genre that
was all-negative (or all-positive) in a fold has a single column; ``positive_proba`` turns
that into the right constant instead of an index error or a silently wrong column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from moviegenre.branches.base import Branch, FitContext
from moviegenre.config.keys import Key, Schema, choice, integer

log = logging.getLogger(__name__)

FOREST_KEYS = ("n_estimators", "max_depth", "max_features", "min_samples_leaf", "class_weight", "n_jobs")


def _max_features(value: str | float) -> str | None:
    if isinstance(value, str):
        return None if value in ("sqrt", "log2") else f"must be sqrt, log2, an int or a fraction, not {value!r}"
    if isinstance(value, int):
        return None if value >= 1 else f"must be at least 1, not {value}"
    return None if 0 < value <= 1 else f"must be a fraction in (0, 1], not {value}"


FOREST_SCHEMA: Schema = {
    "n_estimators": integer(1, 5000),
    "max_depth": integer(1, 1000, nullable=True),
    "max_features": Key((str, int, float), _max_features, describe="sqrt, log2, an int or a fraction"),
    "min_samples_leaf": integer(1, 10000),
    "class_weight": choice("balanced", "balanced_subsample", nullable=True),
    "n_jobs": integer(-1, 256),
}


def positive_proba(forest: ExtraTreesClassifier | RandomForestClassifier, features: Any) -> np.ndarray:
    """(n, n_genres) probability of the positive class for every genre."""
    per_genre = forest.predict_proba(features)
    if not isinstance(per_genre, list):  # a single genre
        per_genre = [per_genre]
    columns = []
    for classes, proba in zip(forest.classes_ if len(per_genre) > 1 else [forest.classes_], per_genre, strict=True):
        classes = list(classes)
        if 1 in classes:
            columns.append(proba[:, classes.index(1)])
        else:
            columns.append(np.zeros(proba.shape[0]))
    return np.stack(columns, axis=1).astype(np.float64)


class ForestBranch(Branch):
    """A multi-output forest on one feature matrix; subclasses choose the estimator and inputs."""

    estimator: ClassVar[type[ExtraTreesClassifier] | type[RandomForestClassifier]]
    model_file = "model.joblib"

    def __init__(self, settings: dict[str, Any], seed: int, spec: Any = None) -> None:
        super().__init__(settings, seed, spec)
        self.model: ExtraTreesClassifier | RandomForestClassifier | None = None

    def make(self) -> ExtraTreesClassifier | RandomForestClassifier:
        return self.estimator(random_state=self.seed, **{k: self.settings[k] for k in FOREST_KEYS})

    def fit(self, x: Any, labels: np.ndarray, split: np.ndarray, context: FitContext) -> dict[str, Any]:
        train = np.flatnonzero(split == "train")
        absent = [g for g, n in zip(context.genres, labels[train].sum(axis=0), strict=True) if n == 0]
        if absent:
            log.warning("genres with no positive training movie (predicted 0): %s", ", ".join(absent))
        self.model = self.make().fit(x[train], labels[train])
        return {}

    def predict_proba(self, x: Any) -> np.ndarray:
        """Trees are summed in one thread: in parallel their order, and so the last float bits, vary."""
        assert self.model is not None
        n_jobs, self.model.n_jobs = self.model.n_jobs, 1
        try:
            return positive_proba(self.model, x)
        finally:
            self.model.n_jobs = n_jobs

    def save_model(self, directory: Path) -> None:
        joblib.dump(self.model, directory / self.model_file, compress=3)

    def load_model(self, directory: Path) -> None:
        self.model = joblib.load(directory / self.model_file)


class ImageForest(ForestBranch):
    """ExtraTrees on the posters' PCA components, plus colour statistics for ``pca+color``."""

    name = "image_ml"
    modality = "poster"
    feature_set = "images"
    estimator = ExtraTreesClassifier
    schema: ClassVar[Schema] = {"features": choice("pca", "pca+color"), **FOREST_SCHEMA}

    def reads(self) -> tuple[str, ...]:
        return ("pca", "colour") if self.settings["features"] == "pca+color" else ("pca",)

    def inputs(self, arrays: Mapping[str, Any]) -> np.ndarray:
        return np.hstack([np.asarray(arrays[name], dtype=np.float32) for name in self.reads()])


class TextForest(ForestBranch):
    """RandomForest on TF-IDF of plots (plot-only movies train too)."""

    name = "text_ml"
    modality = "plot"
    feature_set = "text"
    estimator = RandomForestClassifier
    schema: ClassVar[Schema] = {"features": choice("tfidf"), **FOREST_SCHEMA}

    def reads(self) -> tuple[str, ...]:
        return ("tfidf",)

    def inputs(self, arrays: Mapping[str, Any]) -> sp.csr_matrix:
        return sp.csr_matrix(arrays["tfidf"])
