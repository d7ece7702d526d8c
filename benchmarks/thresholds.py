"""Compare ways of fitting the genre-set thresholds, scored on val out of fold.

The ensemble's thresholds are fitted on val, so val's in-sample F1 flatters whatever fits val
best. This script takes the ensemble's val and test probabilities (its fitted combiner, from
``models/ensemble/ensemble.json``), cuts val into ``--folds`` folds (``--repeats`` shuffles),
fits each threshold method on the other folds and applies it to the held-out one, and prints
the median (and range) over the shuffles of the macro F1 of the pooled out-of-fold genre sets
and of the folds' mean. The test column is the method fitted on all of val: printed for the
record, never a reason to choose. Run ``dvc repro`` first.

    python benchmarks/thresholds.py
    python benchmarks/thresholds.py --folds 5 --repeats 7
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moviegenre.core.paths import ProjectPaths  # noqa: E402
from moviegenre.data.table import labels_for, load_prepared  # noqa: E402
from moviegenre.ensemble.combine import combine, load_branches  # noqa: E402
from moviegenre.ensemble.model import EnsembleModel  # noqa: E402
from moviegenre.evaluation.genre_sets import apply_thresholds, fit_thresholds, set_scores  # noqa: E402

Fit = Callable[[np.ndarray, np.ndarray], list[float]]  # (labels, probabilities) -> one cut per genre


def bagged_thresholds(y: np.ndarray, p: np.ndarray, bootstraps: int, seed: int) -> list[float]:
    """Per genre, the mean F1-maximising cut over ``bootstraps`` resamples of the rows: a genre's
    best cut rests on its few val positives, and bagging averages out which ones val holds."""
    rng = np.random.default_rng(seed)
    cuts = np.empty((bootstraps, y.shape[1]))
    for b in range(bootstraps):
        rows = rng.integers(0, len(y), len(y))
        cuts[b] = fit_thresholds(y[rows], p[rows], "per_genre")
    return list(cuts.mean(axis=0))


def halfway(y: np.ndarray, p: np.ndarray) -> list[float]:
    """The mean of the per-genre best cut and the one-factor cut."""
    return list((np.asarray(fit_thresholds(y, p, "per_genre")) + np.asarray(fit_thresholds(y, p, "rate"))) / 2)


def out_of_fold(fit: Fit, proba: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[float, float]:
    """Macro F1 of the pooled out-of-fold sets, and the mean of the folds' own macro F1."""
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.zeros(y.shape, dtype=bool)
    per_fold = []
    for held in np.array_split(order, folds):
        kept = np.setdiff1d(order, held)
        predicted[held] = apply_thresholds(proba[held], fit(y[kept], proba[kept]))
        per_fold.append(set_scores(y[held], predicted[held])["f1_macro"])
    return set_scores(y, predicted)["f1_macro"], float(np.mean(per_fold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    paths = ProjectPaths(ROOT)
    model = EnsembleModel.load(paths.model("ensemble"))
    table, genres = load_prepared(paths.prepared)
    loaded = load_branches(list(model.branches), genres, paths.predictions)
    labels = labels_for(loaded.ids, table, genres)
    proba = combine(loaded.by_branch, model.weights, model.average)
    is_val, is_test = loaded.split == "val", loaded.split == "test"
    val, y_val, test, y_test = proba[is_val], labels[is_val], proba[is_test], labels[is_test]

    methods: dict[str, Fit] = {
        "best per genre (per_genre)": lambda y, p: fit_thresholds(y, p, "per_genre"),
        "one rate factor (rate)": lambda y, p: fit_thresholds(y, p, "rate"),
    }
    for bootstraps in (25, 100):
        methods[f"bagged, {bootstraps} bootstraps"] = lambda y, p, b=bootstraps: bagged_thresholds(
            y, p, bootstraps=b, seed=0
        )
    methods["halfway best / rate"] = halfway
    print(f"{len(y_val)} val movies, {len(y_test)} test movies, {len(genres)} genres; ensemble {model.method}")
    print(f"{'thresholds':<36} {'val out of fold, pooled':>26} {'val folds mean':>26} {'test':>8}")
    for name, fit in methods.items():
        runs = [out_of_fold(fit, val, y_val, args.folds, seed) for seed in range(args.repeats)]
        test_f1 = set_scores(y_test, apply_thresholds(test, fit(y_val, val)))["f1_macro"]
        columns = [f"{statistics.median(v):.4f} ({min(v):.4f}-{max(v):.4f})" for v in zip(*runs, strict=True)]
        print(f"{name:<36} {columns[0]:>26} {columns[1]:>26} {test_f1:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
