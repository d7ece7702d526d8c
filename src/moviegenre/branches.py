"""What every branch does around its model: labels for its rows, and its three outputs.

Each branch writes ``data/predictions/<branch>.parquet`` (val and test movies),
``metrics/<branch>.json`` and its model under ``models/``; this module keeps those
identical in form across the four branches.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from moviegenre import probabilities
from moviegenre.atomic import write_json
from moviegenre.dataset import label_matrix
from moviegenre.errors import MovieGenreError
from moviegenre.evaluation import branch_metrics

log = logging.getLogger(__name__)

MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
SCORED_SPLITS = ("val", "test")


def labels_for(index: pd.DataFrame, table: pd.DataFrame, genres: list[str]) -> np.ndarray:
    """Multi-hot labels for the feature rows listed in ``index`` (id, split), in that order."""
    by_id = table.set_index("id")
    missing = index.loc[~index["id"].isin(by_id.index), "id"]
    if len(missing):
        raise MovieGenreError(
            f"feature rows for ids not in the prepared table (e.g. {missing.iloc[0]}); rerun `dvc repro`"
        )
    return label_matrix(by_id.loc[index["id"], "genres"].tolist(), genres)


def write_outputs(
    branch: str,
    index: pd.DataFrame,
    proba: np.ndarray,
    labels: np.ndarray,
    genres: list[str],
    fit_s: float,
    predict_s: float,
    extra: dict | None = None,
) -> dict:
    """Write the branch's probabilities (val, test rows of ``index``) and metrics.

    ``extra`` adds branch-specific entries (epochs, throughput) beside the contract's keys.
    """
    scored = index["split"].isin(SCORED_SPLITS).to_numpy()
    if proba.shape[0] != scored.sum():
        raise ValueError(f"{branch}: {proba.shape[0]} probability rows for {scored.sum()} val/test movies")
    split = index.loc[scored, "split"].to_numpy()
    probabilities.write(
        probabilities.PREDICTIONS_DIR / f"{branch}.parquet", index.loc[scored, "id"], split, proba, genres
    )
    metrics = branch_metrics(labels[scored], proba, split, fit_s, predict_s) | (extra or {})
    write_json(METRICS_DIR / f"{branch}.json", metrics)
    log.info(
        "%s: test macro ROC-AUC %.4f, val %.4f (fit %.1fs)",
        branch,
        metrics["test"]["roc_auc_macro"],
        metrics["val"]["roc_auc_macro"],
        fit_s,
    )
    return metrics
