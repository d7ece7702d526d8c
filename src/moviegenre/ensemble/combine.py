"""Combine the branches' probabilities: plain mean, fixed weights, or weights fitted on val.

All branches must describe the same movies (same ids, splits and order) and the same genres;
anything else is an error, because averaging misaligned rows produces plausible nonsense.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moviegenre.core.errors import MovieGenreError
from moviegenre.evaluation import probabilities
from moviegenre.evaluation.metrics import macro_auc_ranks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BranchProbabilities:
    ids: np.ndarray
    split: np.ndarray
    by_branch: dict[str, np.ndarray]  # branch -> (n, n_genres)


def load_branches(branches: list[str], genres: list[str], directory: Path) -> BranchProbabilities:
    """Read each branch's file and check that they line up row for row."""
    frames = {b: probabilities.read(directory / f"{b}.parquet", genres) for b in branches}
    first_name, first = next(iter(frames.items()))
    for name, frame in frames.items():
        if len(frame) != len(first) or not (frame["id"].to_numpy() == first["id"].to_numpy()).all():
            raise MovieGenreError(
                f"{directory / (name + '.parquet')}: its movies differ from {first_name}'s "
                f"({len(frame)} vs {len(first)} rows, or another order); rerun `dvc repro`"
            )
        if not (frame["split"].to_numpy() == first["split"].to_numpy()).all():
            raise MovieGenreError(f"{directory / (name + '.parquet')}: splits differ from {first_name}'s")
    return BranchProbabilities(
        first["id"].to_numpy(),
        first["split"].to_numpy(),
        {b: f[genres].to_numpy(dtype=np.float64) for b, f in frames.items()},
    )


def combine(by_branch: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the branches' probabilities.

    A NaN row means the branch could not see that movie (predict: no poster, or no plot);
    the weights are then renormalised over the branches that did, and a movie no branch
    saw stays NaN. The ensemble stage has no NaN, so there this is the plain weighted mean.
    """
    names = [b for b in weights if b in by_branch]
    stacked = np.stack([by_branch[b] for b in names])  # (branches, n, genres)
    seen = ~np.isnan(stacked)
    w = np.array([weights[b] for b in names], dtype=np.float64)[:, None, None] * seen
    total = w.sum(axis=0)
    combined = (np.where(seen, stacked, 0.0) * w).sum(axis=0) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, combined, np.nan)


def fit_weights(by_branch: dict[str, np.ndarray], y_val: np.ndarray, step: float = 0.05) -> dict[str, float]:
    """Non-negative weights summing to 1 that maximise val macro ROC-AUC, by grid search.

    With four branches a 0.05 grid is 1,771 candidates: exhaustive, deterministic, and a
    couple of seconds, where a gradient method would need a smooth surrogate of AUC.
    """
    names = list(by_branch)
    units = round(1 / step)
    best, best_weights = -1.0, dict.fromkeys(names, 1.0 / len(names))
    for cut in itertools.combinations(range(units + len(names) - 1), len(names) - 1):
        bounds = (-1, *cut, units + len(names) - 1)
        counts = [bounds[i + 1] - bounds[i] - 1 for i in range(len(names))]
        weights = {n: c / units for n, c in zip(names, counts, strict=True)}
        if not any(weights.values()):
            continue
        score = macro_auc_ranks(y_val, combine(by_branch, weights))
        if score > best + 1e-12:
            best, best_weights = score, weights
    log.info("val-fitted weights %s (val macro AUC %.4f)", best_weights, best)
    return best_weights


def choose_weights(
    method: str, settings_weights: dict[str, float], by_branch: dict[str, np.ndarray], y_val: np.ndarray
) -> dict[str, float]:
    """Weights per branch, normalised to sum to 1, for ``ensemble.method``."""
    if method == "mean":
        weights = dict.fromkeys(by_branch, 1.0)
    elif method == "weighted":
        weights = {b: float(settings_weights.get(b, 1.0)) for b in by_branch}  # unlisted: 1
        if not sum(weights.values()) > 0:
            raise MovieGenreError("params.yaml: 'ensemble.weights' of the chosen branches sum to 0")
    else:
        weights = fit_weights(by_branch, y_val)
    total = sum(weights.values())
    return {b: round(w / total, 6) for b, w in weights.items()}
