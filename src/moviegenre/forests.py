"""The classical branches: ExtraTrees (posters) and RandomForest (plots), multi-label.

scikit-learn's forests fit all genres at once (multi-output trees). Their ``predict_proba``
returns one array per genre whose columns are the classes seen in training, so a genre that
was all-negative (or all-positive) in a fold has a single column; ``positive_proba`` turns
that into the right constant instead of an index error or a silently wrong column.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

log = logging.getLogger(__name__)

FOREST_KEYS = ("n_estimators", "max_depth", "max_features", "min_samples_leaf", "class_weight", "n_jobs")


def make_forest(kind: str, settings: dict, seed: int) -> ExtraTreesClassifier | RandomForestClassifier:
    estimator = {"extra_trees": ExtraTreesClassifier, "random_forest": RandomForestClassifier}[kind]
    return estimator(random_state=seed, **{k: settings[k] for k in FOREST_KEYS})


def fit(forest, features, labels: np.ndarray, genres: list[str]):
    absent = [g for g, n in zip(genres, labels.sum(axis=0), strict=True) if n == 0]
    if absent:
        log.warning("genres with no positive training movie (predicted 0): %s", ", ".join(absent))
    return forest.fit(features, labels)


def positive_proba(forest, features) -> np.ndarray:
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
    return np.stack(columns, axis=1)
