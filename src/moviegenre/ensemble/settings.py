"""The ensemble's params section: how to combine, and which branches (names from the registry)."""

from __future__ import annotations

from moviegenre.branches.registry import NAMES
from moviegenre.config.keys import Schema, choice, integer, number, number_map, string_list
from moviegenre.ensemble.combine import AVERAGES
from moviegenre.ensemble.model import METHODS
from moviegenre.evaluation.genre_sets import THRESHOLD_METHODS

SCHEMA: Schema = {
    "method": choice(*METHODS),
    "average": choice(*AVERAGES),
    "weights": number_map(NAMES),
    "branches": string_list(NAMES),
    "stack_C": number(1e-6, 1e6),
    "stack_folds": integer(2, 20),
    "thresholds": choice(*THRESHOLD_METHODS),
}
