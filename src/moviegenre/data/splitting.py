"""Seeded, multi-label stratified train/val/test split of the movies that have a poster and a plot."""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from moviegenre.core.errors import MovieGenreError

SPLITS = ("train", "val", "test")


def check_fractions(fractions: dict[str, float]) -> None:
    if set(fractions) != set(SPLITS):
        raise MovieGenreError(f"params.yaml: 'prepare.split' must give train, val and test, not {sorted(fractions)}")
    if any(fractions[s] <= 0 for s in SPLITS) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise MovieGenreError(f"params.yaml: 'prepare.split' fractions must be positive and sum to 1, not {fractions}")


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Assign each row of the multi-hot ``labels`` to 'train', 'val' or 'test'.

    Two stratified cuts: test off the whole, then val off the rest, so each split keeps
    every genre's share as closely as iterative stratification allows.
    """
    check_fractions(fractions)
    n = len(labels)
    if n < 10:
        raise MovieGenreError(f"only {n} movies with a poster and a plot: too few to split")
    assignment = np.full(n, "train", dtype=object)
    rows = np.arange(n)
    first = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fractions["test"], random_state=seed)
    rest, test = next(first.split(rows, labels))
    assignment[test] = "test"
    val_share = fractions["val"] / (fractions["train"] + fractions["val"])
    second = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_share, random_state=seed + 1)
    _, val = next(second.split(rest, labels[rest]))
    assignment[rest[val]] = "val"
    return assignment
