"""Fit the ensemble on val: the combination of each branch set, and its genre thresholds.

Val is the only data the ensemble learns from: weights (method val), stackers (method
stack, scored out of fold) and the F1 thresholds of the genre sets. Test is only scored.
"""

from __future__ import annotations

import logging

import numpy as np
import yaml

from moviegenre.branches.registry import REGISTRY
from moviegenre.ensemble.combine import choose_weights, combine
from moviegenre.ensemble.model import Combiner, EnsembleModel
from moviegenre.ensemble.settings import EnsembleSettings
from moviegenre.ensemble.stacking import fit_stacker, out_of_fold
from moviegenre.evaluation.genre_sets import fit_thresholds

log = logging.getLogger(__name__)


def modalities() -> dict[str, str]:
    """Branch -> what it scores (poster, plot or both), as the registry lists it: the ensemble needs
    no branch module for this, so editing one does not rerun the ensemble by itself."""
    return {name: entry["modality"] for name, entry in yaml.safe_load(REGISTRY.read_text())["branches"].items()}


def branch_sets(branches: list[str]) -> list[list[str]]:
    """All branches first, then the poster-only and plot-only subsets a movie can be seen by."""
    by_branch = modalities()
    sets = [branches]
    for modality in ("poster", "plot"):
        subset = [b for b in branches if by_branch[b] == modality]
        if subset and subset != branches and subset not in sets:
            sets.append(subset)
    return sets


def fit_combiner(
    branches: list[str], settings: EnsembleSettings, val: dict[str, np.ndarray], y_val: np.ndarray, seed: int
) -> tuple[Combiner, np.ndarray]:
    """A combiner for ``branches`` and its val probabilities (out of fold under stacking)."""
    part = {b: val[b] for b in branches}
    if settings.method == "stack":
        stacker = fit_stacker(part, y_val, settings.stack_C)
        val_proba = out_of_fold(part, y_val, settings.stack_C, settings.stack_folds, seed)
        return Combiner(branches, fit_thresholds(y_val, val_proba, settings.thresholds), stacker=stacker), val_proba
    weights = choose_weights(settings.method, settings.weights, part, y_val, settings.average)
    val_proba = combine(part, weights, settings.average)
    return Combiner(branches, fit_thresholds(y_val, val_proba, settings.thresholds), weights=weights), val_proba


def fit_ensemble(
    settings: EnsembleSettings, genres: list[str], val: dict[str, np.ndarray], y_val: np.ndarray, seed: int
) -> tuple[EnsembleModel, np.ndarray]:
    """The ensemble model and the full combiner's val probabilities."""
    combiners, full_val = [], None
    for branches in branch_sets(list(val)):
        combiner, val_proba = fit_combiner(branches, settings, val, y_val, seed)
        combiners.append(combiner)
        full_val = val_proba if full_val is None else full_val
        log.info("ensemble over %s fitted on %d val movies", ", ".join(branches), len(y_val))
    assert full_val is not None
    return EnsembleModel(settings.method, genres, combiners, settings.average), full_val
