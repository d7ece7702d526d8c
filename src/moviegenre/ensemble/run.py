"""The ensemble stage's work: combine the chosen branches and write every result file.

Besides its own metrics (contract plus the weights used), it writes the headline view
``metrics/summary.json``: each branch's and the ensemble's test macro ROC-AUC at the top
level (short column names, so `dvc exp show` fits a terminal) and their val AUC under
``val``. It is the one metrics file dvc.yaml declares, so `dvc exp show` leads with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from moviegenre.core.digests import sha256_file
from moviegenre.core.files import atomic_path, write_json
from moviegenre.core.machine import machine
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import labels_for, load_prepared
from moviegenre.ensemble import figures
from moviegenre.ensemble.combine import load_branches
from moviegenre.ensemble.fitting import fit_ensemble
from moviegenre.ensemble.model import SPEC
from moviegenre.ensemble.settings import EnsembleSettings
from moviegenre.evaluation import probabilities
from moviegenre.evaluation.genre_sets import set_scores
from moviegenre.evaluation.metrics import bootstrap_interval, macro_auc, per_genre_auc, scores_by_split

log = logging.getLogger(__name__)


def spec_digests(branches: list[str], paths: ProjectPaths) -> dict[str, str]:
    """Each branch's ``spec.json`` sha256: which model produced the predictions being combined.

    The train stage writes the model and its predictions together, so the predictions this
    stage depends on change with the model; the digest lets prediction, which reads the model
    and not the predictions, tell that they still belong together. A branch with no saved
    model (predictions made elsewhere) is left out.
    """
    specs = {branch: paths.model(branch) / SPEC for branch in branches}
    return {branch: sha256_file(spec) for branch, spec in specs.items() if spec.is_file()}


def per_genre_table(genres: list[str], y_test: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Test ROC-AUC per genre (rows) for each branch and the ensemble (columns)."""
    table = pd.DataFrame({"genre": genres, "test_positives": y_test.sum(axis=0).astype(int)})
    for name, proba in scores.items():
        table[name] = np.round(per_genre_auc(y_test, proba), 6)
    return table


def summary(labels: np.ndarray, split: np.ndarray, by_branch: dict[str, np.ndarray], ensemble: dict) -> dict:
    """Name -> test macro ROC-AUC, and ``val`` -> name -> val macro ROC-AUC, ensemble included.

    The branches' figures are computed from the predictions the ensemble read, as their train
    stage computed them for ``metrics/<branch>.json``, so the ensemble depends on the
    predictions folder alone.
    """
    scores = {name: {part: macro_auc(labels[split == part], proba[split == part]) for part in ("test", "val")}
              for name, proba in by_branch.items()}  # fmt: skip
    scores["ensemble"] = {part: ensemble[part]["roc_auc_macro"] for part in ("test", "val")}
    return {name: s["test"] for name, s in scores.items()} | {"val": {name: s["val"] for name, s in scores.items()}}


def write_figures(
    paths: ProjectPaths, genres: list[str], labels: np.ndarray, proba: np.ndarray, scores: dict[str, np.ndarray],
    per_genre: pd.DataFrame, val: np.ndarray, test: np.ndarray, seed: int, thresholds: list[float],
) -> dict[str, float]:  # fmt: skip
    """plots/: the test ROC of every branch, the ensemble's genre-set curves on val with the
    ``thresholds`` it fitted there, the AUC figures; returns each test macro ROC-AUC.

    The intervals are the branches' own (bootstrap_interval with the seed their train stages
    used, on the same test predictions), so the error bars match metrics/<branch>.json.
    """
    write_json(paths.plots / "roc.json", figures.roc_rows(labels[test], scores))
    write_json(paths.plots / "thresholds.json", figures.threshold_rows(genres, labels[val], proba[val], thresholds))
    figures.per_genre_png(per_genre, paths.plots / "per_genre_auc.png")
    macro = {name: round(float(per_genre[name].mean()), 6) for name in scores}  # NaN genres skipped, as in scores
    intervals = {name: bootstrap_interval(labels[test], values, seed) for name, values in scores.items()}
    figures.macro_png(macro, intervals, paths.plots / "macro_auc.png")
    return macro


def run_ensemble(settings: EnsembleSettings, seed: int, paths: ProjectPaths) -> dict[str, Any]:
    """Fit the combination and genre thresholds on val; write the model, metrics, summary and figures.

    Test is scored at the thresholds fitted on val: genre-set F1, precision and recall join
    the test block of metrics/ensemble.json beside the ROC-AUC.
    """
    table, genres = load_prepared(paths.prepared)
    branches = list(dict.fromkeys(settings.branches))
    loaded = load_branches(branches, genres, paths.predictions)
    fitted_on = spec_digests(branches, paths)
    labels = labels_for(loaded.ids, table, genres)
    val, test = loaded.split == "val", loaded.split == "test"

    started = time.perf_counter()
    model, val_proba = fit_ensemble(
        settings, genres, {b: p[val] for b, p in loaded.by_branch.items()}, labels[val], seed
    )
    fit_s = time.perf_counter() - started
    model = replace(model, fitted_on=fitted_on)
    proba = np.full(labels.shape, np.nan)
    proba[val] = val_proba  # out of fold under stacking: val is what the stacker learnt from
    proba[test], test_sets = model.predict({b: p[test] for b, p in loaded.by_branch.items()})

    metrics: dict[str, Any] = scores_by_split(labels, proba, loaded.split, seed)
    metrics["test"] |= set_scores(labels[test], test_sets)
    metrics["method"] = settings.method
    metrics["average"] = settings.average
    if model.weights is not None:
        metrics["weights"] = model.weights
    model.save(paths.model("ensemble"))
    probabilities.write(paths.prediction("ensemble"), pd.Series(loaded.ids), loaded.split, proba, genres)
    scores = {**{b: p[test] for b, p in loaded.by_branch.items()}, "ensemble": proba[test]}
    per_genre = per_genre_table(genres, labels[test], scores)
    with atomic_path(paths.metrics / "per_genre_auc.csv") as tmp:
        per_genre.to_csv(tmp, index=False)
    # the full combiner's: val's movies are seen by every branch, and proba[val] is its output
    macro = write_figures(paths, genres, labels, proba, scores, per_genre, val, test, seed,
                          model.combiners[0].thresholds)  # fmt: skip
    write_json(paths.metrics / "ensemble.json", metrics)
    write_json(paths.timings / "ensemble.json", {"seconds": {"fit": round(fit_s, 3)}, "machine": machine()})
    write_json(paths.summary, summary(labels, loaded.split, loaded.by_branch, metrics))
    log.info("ensemble (%s): test macro ROC-AUC %.4f, genre sets F1 macro %.4f; branches %s", settings.method,
             metrics["test"]["roc_auc_macro"], metrics["test"]["f1_macro"], macro)  # fmt: skip
    return metrics
