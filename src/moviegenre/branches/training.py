"""The skeleton of the train stage, whatever the branch: labels, fit, score val/test, save, write outputs.

A branch's outputs are identical in form whatever the branch: ``models/<branch>/`` (model
and spec), ``data/predictions/<branch>.parquet`` (val and test movies),
``metrics/<branch>.json`` (the metrics contract plus what the fit reports), its dvclive run
``dvclive/<branch>/`` (params and the train/val summary, plus per-epoch curves for a branch
that fits in epochs), and its timings apart in ``metrics/timings/<branch>.json``: they move
every run, the scores do not. The dvclive run is written aside and moved into place last, so a
stage that fails or is interrupted leaves no log of a fit that has no model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from dvclive import Live

from moviegenre import cluster
from moviegenre.branches.base import Branch, FitContext, ModelSpec, Rows, row_shape
from moviegenre.config.params import load_seed, load_settings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.settings import to_dict
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, write_json
from moviegenre.core.machine import machine
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import labels_for, load_prepared
from moviegenre.evaluation import probabilities
from moviegenre.evaluation.metrics import macro_auc_ranks, scores_by_split
from moviegenre.features.sets import sets_fingerprint
from moviegenre.features.store import load_array, load_index

log = logging.getLogger(__name__)

SCORED_SPLITS = ("val", "test")


def run_train_stage(branch_class: type[Branch[Any]], paths: ProjectPaths) -> dict[str, Any]:
    """The train stage of one branch: validate its params section and runtime's, then train it, on
    the Dask cluster Dask's config names if the branch is data-parallel (a branch that is not
    never connects to one)."""
    settings = load_settings(branch_class.Settings, branch_class.name, paths.params)
    seed = load_seed(paths.params)
    runtime = load_settings(RuntimeSettings, "runtime", paths.params)
    if not branch_class.data_parallel:
        return train_branch(branch_class(settings, seed), paths, runtime)
    with cluster.engine() as engine:
        return train_branch(branch_class(settings, seed), paths, runtime, engine)


def train_branch(
    branch: Branch[Any], paths: ProjectPaths, runtime: RuntimeSettings, engine: cluster.Engine | None = None
) -> dict[str, Any]:
    """Fit ``branch`` on its features' train rows; write model, probabilities, metrics and its dvclive run.

    The rows are those of the branch's own feature set; arrays of another set (a branch over
    posters and plots) are taken at the same movies, so val and test come out in the order
    and with the ids every other branch writes. The branch is handed its train and val rows
    only, each split's arrays selected before ``inputs`` assembles them; the test rows reach
    it once the fit is done, to be scored. With an ``engine``, joblib's work inside the fit and
    the scoring runs on its cluster.
    """
    table, genres = load_prepared(paths.prepared)
    feature_dir = paths.features(branch.feature_set)
    index = load_index(feature_dir)
    arrays = load_aligned(branch, paths, index["id"])
    labels = labels_for(index["id"], table, genres)
    split = index["split"].to_numpy()
    scored = np.flatnonzero(np.isin(split, SCORED_SPLITS))
    rows = {part: np.flatnonzero(split == part) for part in ("train", "val")}
    train_arrays = _at(arrays, rows["train"])
    train = Rows(branch.inputs(train_arrays), labels[rows["train"]])
    val = Rows(branch.inputs(_at(arrays, rows["val"])), labels[rows["val"]])
    shapes = {name: tuple(int(d) for d in array.shape[1:]) for name, array in arrays.items()}

    with atomic_dir(paths.live(branch.name)) as live_dir:  # the last good log stays until this run succeeds
        with Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            live.log_params(to_dict(branch.settings))
            context = FitContext(genres, runtime, feature_dir, live, array_shapes=shapes)
            with engine.joblib() if engine is not None else contextlib.nullcontext():
                started = time.perf_counter()
                extra = branch.fit(train, val, context)
                fit_s = time.perf_counter() - started
                started = time.perf_counter()
                proba = branch.predict_proba(branch.inputs(_at(arrays, scored)))
                predict_s = time.perf_counter() - started
            if not branch.epochs:
                # no curve: a fit without epochs has one state, which a chart would draw as a
                # curve of one point; the fitted model's train and val AUC are its summary alone
                live.summary = _summary(branch, train, val)

        branch.spec = ModelSpec(
            branch=branch.name,
            feature_set=branch.feature_set,
            arrays=list(branch.reads()),
            input_shape=row_shape(train.x),
            input_description=branch.describe_input(train_arrays),
            genres=genres,
            features_fingerprint=sets_fingerprint(branch.feature_sets(), paths.features),
            settings=to_dict(branch.settings),
            seed=branch.seed,
            libraries=ModelSpec.library_versions(),
        )
        branch.save(paths.model(branch.name))
        probabilities.write(
            paths.predictions / f"{branch.name}.parquet", index["id"].iloc[scored], split[scored], proba, genres
        )
        timings: dict[str, Any] = {"seconds": {"fit": round(fit_s, 3), "predict": round(predict_s, 3)}}
        if "throughput" in extra:
            timings["throughput"] = extra.pop("throughput")
        metrics = scores_by_split(labels[scored], proba, split[scored], branch.seed) | extra
        write_json(paths.metrics / f"{branch.name}.json", metrics)
        write_json(
            paths.timings / f"{branch.name}.json", timings | {"machine": machine(), "engine": cluster.describe(engine)}
        )
        log.info(
            "%s: test macro ROC-AUC %.4f, val %.4f (fit %.1fs)",
            branch.name, metrics["test"]["roc_auc_macro"], metrics["val"]["roc_auc_macro"], fit_s,
        )  # fmt: skip
    return metrics


def load_aligned(branch: Branch[Any], paths: ProjectPaths, ids: pd.Series) -> dict[str, Any]:
    """The arrays ``branch.reads()`` names, each row ``i`` being movie ``ids[i]`` (its own set's rows)."""
    arrays: dict[str, Any] = {}
    positions: dict[str, np.ndarray | None] = {branch.feature_set: None}  # None: already in these rows
    for name, (feature_set, array) in branch.sources().items():
        directory = paths.features(feature_set)
        if feature_set not in positions:
            positions[feature_set] = _positions(ids, load_index(directory)["id"], directory)
        values, rows = load_array(directory, array), positions[feature_set]
        arrays[name] = values if rows is None else values[rows]
    return arrays


def _at(arrays: Mapping[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """Every array at ``rows`` only (a memory-mapped one read at those rows)."""
    return {name: array[rows] for name, array in arrays.items()}


def _positions(ids: pd.Series, other: pd.Series, directory: Path) -> np.ndarray:
    """Where each of ``ids`` is in ``other`` (another feature set's index)."""
    where = pd.Index(other).get_indexer(ids)
    if (where < 0).any():
        missing = ids[where < 0]
        raise MovieGenreError(
            f"{directory}: has no row for {len(missing)} movie(s) of the branch's rows (e.g. {missing.iloc[0]}); "
            f"run `dvc repro`"
        )
    return where


def _summary(branch: Branch[Any], train: Rows, val: Rows) -> dict[str, Any]:
    """Train and val macro AUC of the fitted model: what a fit in epochs logs for its best epoch."""
    summary: dict[str, Any] = {}
    for name, rows in (("train", train), ("val", val)):
        summary[name] = {"auc": round(macro_auc_ranks(rows.labels, branch.predict_proba(rows.x)), 6)}
    return summary
