"""Train a forest branch end to end: fit on train rows, score val/test, write its outputs."""

from __future__ import annotations

import time

import joblib
import numpy as np
import pandas as pd

from moviegenre import forests
from moviegenre.atomic import atomic_path
from moviegenre.branches import MODELS_DIR, SCORED_SPLITS, labels_for, write_outputs
from moviegenre.dataset import load_prepared


def run_forest_branch(branch: str, kind: str, features, index: pd.DataFrame, settings: dict, seed: int) -> dict:
    """``features`` rows follow ``index`` (id, split); returns the branch's metrics."""
    table, genres = load_prepared()
    labels = labels_for(index, table, genres)
    train = np.flatnonzero((index["split"] == "train").to_numpy())
    scored = np.flatnonzero(index["split"].isin(SCORED_SPLITS).to_numpy())

    started = time.perf_counter()
    model = forests.fit(forests.make_forest(kind, settings, seed), features[train], labels[train], genres)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    proba = forests.positive_proba(model, features[scored])
    predict_s = time.perf_counter() - started

    with atomic_path(MODELS_DIR / f"{branch}.joblib") as tmp:
        # the feature set travels with the model, so prediction builds the same inputs
        joblib.dump({"model": model, "features": settings["features"]}, tmp, compress=3)
    return write_outputs(branch, index, proba, labels, genres, fit_s, predict_s)
