"""Combine the branches' probabilities: plain mean, fixed weights, or weights fitted on val.

The mean is taken of the probabilities, or of their logits (``ensemble.average``) and turned
back into a probability: in logit space a branch that is confident (0.99 against 0.5) moves
the result further than one that hedges, where a mean of probabilities caps what any one
branch can add.

All branches must describe the same movies (same ids, splits and order) and the same genres;
anything else is an error, because averaging misaligned rows produces plausible nonsense.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from moviegenre.core.errors import MovieGenreError
from moviegenre.ensemble.stacking import logits
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


Average = Literal["probabilities", "logits"]
AVERAGES: tuple[str, ...] = get_args(Average)


def combine(by_branch: dict[str, np.ndarray], weights: dict[str, float], average: str = "probabilities") -> np.ndarray:
    """Weighted mean of the branches' probabilities (``average``: or of their logits, as a probability).

    A NaN row means the branch could not see that movie (predict: no poster, or no plot);
    the weights are then renormalised over the branches that did, and a movie no branch
    saw stays NaN. The ensemble stage has no NaN, so there this is the plain weighted mean.
    """
    names = [b for b in weights if b in by_branch]
    stacked = np.stack([by_branch[b] for b in names])  # (branches, n, genres)
    if average == "logits":
        stacked = logits(stacked)  # NaN stays NaN
    seen = ~np.isnan(stacked)
    w = np.array([weights[b] for b in names], dtype=np.float64)[:, None, None] * seen
    total = w.sum(axis=0)
    combined = (np.where(seen, stacked, 0.0) * w).sum(axis=0) / np.where(total > 0, total, 1.0)
    if average == "logits":
        combined = 1 / (1 + np.exp(-combined))
    return np.where(total > 0, combined, np.nan)


MAX_GRID = 60_000  # weight vectors searched exhaustively; a larger grid is climbed instead


def fit_weights(
    by_branch: dict[str, np.ndarray], y_val: np.ndarray, step: float = 0.05, average: str = "probabilities"
) -> dict[str, float]:
    """Non-negative weights on a ``step`` grid summing to 1 that maximise val macro ROC-AUC.

    The grid is searched whole while it is small (``MAX_GRID``: six branches at 0.05), which is
    exhaustive and deterministic where a gradient method would need a smooth surrogate of AUC.
    Beyond that it grows combinatorially, so it is climbed: forward selection of one step at a
    time (ensemble selection with replacement), then moves of one step from one branch to another
    while any raises val AUC. Both are deterministic: ties keep the branch listed first.
    """
    if average == "logits":  # the sigmoid keeps each genre's order: the search runs on the logits' mean
        by_branch = {b: logits(p) for b, p in by_branch.items()}
    names = list(by_branch)
    units = round(1 / step)
    if math.comb(units + len(names) - 1, len(names) - 1) <= MAX_GRID:
        best, best_weights = _grid_search(by_branch, y_val, names, units)
    else:
        best, best_weights = _climb(by_branch, y_val, names, units)
    log.info("val-fitted weights %s (val macro AUC %.4f)", best_weights, best)
    return best_weights


def _grid_search(
    by_branch: dict[str, np.ndarray], y_val: np.ndarray, names: list[str], units: int
) -> tuple[float, dict[str, float]]:
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
    return best, best_weights


def _climb(
    by_branch: dict[str, np.ndarray], y_val: np.ndarray, names: list[str], units: int
) -> tuple[float, dict[str, float]]:
    counts = dict.fromkeys(names, 0)

    def score(candidate: dict[str, int]) -> float:
        return macro_auc_ranks(y_val, combine(by_branch, {n: c / units for n, c in candidate.items()}))

    best = -1.0
    for _ in range(units):  # forward selection: add the step that helps most
        trials = [(score(counts | {n: counts[n] + 1}), n) for n in names]
        best, chosen = max(trials, key=lambda t: t[0])  # max keeps the first of equal scores
        counts[chosen] += 1
    improved = True
    while improved:  # then move one step between branches while that helps
        improved = False
        for source in names:
            for target in names:
                if source == target or counts[source] == 0:
                    continue
                moved = counts | {source: counts[source] - 1, target: counts[target] + 1}
                value = score(moved)
                if value > best + 1e-12:
                    best, counts, improved = value, moved, True
    return best, {n: c / units for n, c in counts.items()}


def choose_weights(
    method: str, settings_weights: dict[str, float], by_branch: dict[str, np.ndarray], y_val: np.ndarray,
    average: str = "probabilities",
) -> dict[str, float]:  # fmt: skip
    """Weights per branch, normalised to sum to 1, for ``ensemble.method``."""
    if method == "mean":
        weights = dict.fromkeys(by_branch, 1.0)
    elif method == "weighted":
        weights = {b: float(settings_weights.get(b, 1.0)) for b in by_branch}  # unlisted: 1
        if not sum(weights.values()) > 0:
            raise MovieGenreError("params.yaml: 'ensemble.weights' of the chosen branches sum to 0")
    else:
        weights = fit_weights(by_branch, y_val, average=average)
    total = sum(weights.values())
    return {b: round(w / total, 6) for b, w in weights.items()}
