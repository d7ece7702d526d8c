"""Compare ways of combining the branches, scored on val out of fold: which one should be the default.

The ensemble learns from val alone, so val's in-sample score flatters whatever fits val best.
This script cuts val into ``--folds`` folds (``--repeats`` times, each with its own shuffle),
fits each method on the other folds, scores the held-out one, and prints the median of the
repeats' macro ROC-AUC over the pooled out-of-fold predictions and of the folds' mean, with
the range. The test column is the
method fitted on all of val, as the ensemble stage fits it: printed for the record, never a
reason to choose. Reads the workspace's predictions (run ``dvc repro`` first).

    python benchmarks/ensemble_methods.py
    python benchmarks/ensemble_methods.py --folds 5 --repeats 5
    python benchmarks/ensemble_methods.py --drop image_dl     # and the weights fitted without image_dl
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moviegenre.core.paths import ProjectPaths  # noqa: E402
from moviegenre.data.table import labels_for, load_prepared  # noqa: E402
from moviegenre.ensemble.combine import combine, fit_weights, load_branches  # noqa: E402
from moviegenre.ensemble.stacking import fit_stacker  # noqa: E402
from moviegenre.evaluation.metrics import macro_auc  # noqa: E402

Scores = dict[str, np.ndarray]
Method = Callable[[Scores, np.ndarray], Callable[[Scores], np.ndarray]]  # fit on val rows -> predictor


def weighted(average: str, fit: bool) -> Method:
    def method(train: Scores, y: np.ndarray) -> Callable[[Scores], np.ndarray]:
        weights = fit_weights(train, y, average=average) if fit else dict.fromkeys(train, 1.0)
        return lambda rows: combine(rows, weights, average)

    return method


def stacked(c: float) -> Method:
    def method(train: Scores, y: np.ndarray) -> Callable[[Scores], np.ndarray]:
        return fit_stacker(train, y, c).predict

    return method


def subset(names: list[str], inner: Method) -> Method:
    def method(train: Scores, y: np.ndarray) -> Callable[[Scores], np.ndarray]:
        fitted = inner({b: train[b] for b in names}, y)
        return lambda rows: fitted({b: rows[b] for b in names})

    return method


def out_of_fold(method: Method, val: Scores, y: np.ndarray, folds: int, seed: int) -> tuple[float, float]:
    """Macro ROC-AUC of the pooled out-of-fold predictions, and the mean of the folds' own.

    Pooling compares movies scored by different fits, which costs a method whose fits differ in
    scale; the folds' mean does not, but each fold scores only the genres it has both classes of.
    """
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.empty(y.shape)
    per_fold = []
    for held in np.array_split(order, folds):
        kept = np.setdiff1d(order, held)
        fitted = method({b: p[kept] for b, p in val.items()}, y[kept])
        predicted[held] = fitted({b: p[held] for b, p in val.items()})
        per_fold.append(macro_auc(y[held], predicted[held]))
    return macro_auc(y, predicted), float(np.mean(per_fold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drop", action="append", default=[], help="also fit without these branches (a,b)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    paths = ProjectPaths(ROOT)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    branches = list(dict.fromkeys(params["ensemble"]["branches"]))
    table, genres = load_prepared(paths.prepared)
    loaded = load_branches(branches, genres, paths.predictions)
    labels = labels_for(loaded.ids, table, genres)
    is_val, is_test = loaded.split == "val", loaded.split == "test"
    val = {b: p[is_val] for b, p in loaded.by_branch.items()}
    test = {b: p[is_test] for b, p in loaded.by_branch.items()}
    y_val, y_test = labels[is_val], labels[is_test]

    methods: dict[str, Method] = {
        "mean of probabilities": weighted("probabilities", fit=False),
        "mean of logits": weighted("logits", fit=False),
        "val weights, probabilities": weighted("probabilities", fit=True),
        "val weights, logits (default)": weighted("logits", fit=True),
        **{f"stack, C={c:g}": stacked(c) for c in (0.003, 0.01, 0.03, 0.1)},
    }
    for dropped in args.drop:  # six branches or fewer are searched on the whole grid: minutes per fit
        kept = [b for b in branches if b not in dropped.split(",")]
        methods[f"val weights, probabilities, without {dropped}"] = subset(kept, weighted("probabilities", fit=True))
    print(f"{len(y_val)} val movies, {len(y_test)} test movies, {len(genres)} genres, branches: {', '.join(branches)}")
    print(f"{'method':<52} {'val out of fold, pooled':>26} {'val folds mean':>26} {'test':>8}")
    for name, method in methods.items():
        runs = [out_of_fold(method, val, y_val, args.folds, seed) for seed in range(args.repeats)]
        test_auc = macro_auc(y_test, method(val, y_val)(test))
        columns = []
        for values in zip(*runs, strict=True):
            columns.append(f"{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})")
        print(f"{name:<52} {columns[0]:>26} {columns[1]:>26} {test_auc:>8.4f}", flush=True)


if __name__ == "__main__":
    main()
