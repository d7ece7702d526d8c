"""Predict genres for new movies from the artifacts `dvc repro` produced.

Branches load themselves from ``models/<branch>/`` through the Branch interface, and the
features of new movies come from the featurizers the feature stages saved (PCA and colour
statistics, vectorisers, tokenizer), through the same functions the stages ran. A movie is
scored by the branches that can see it (a poster: the poster branches; a plot: the plot
branches) and combined by the ensemble's combiner for those branches, whose thresholds give
its genre set (models/ensemble, fitted on val by the ensemble stage). A model whose spec does not
match today's features, or that is not the model the ensemble was fitted with, is refused with
one line: its answer would mix a new branch with weights and thresholds fitted for the old one.
Nothing here imports a training loop.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from moviegenre.branches.base import NEEDS, Branch
from moviegenre.branches.registry import NAMES, branch_class, load_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.core.runtime import quiet_tensorflow
from moviegenre.data.table import load_genres
from moviegenre.ensemble.model import EnsembleModel
from moviegenre.features.sets import MODALITY, sets_fingerprint
from moviegenre.predict.featurizers import Featurize, import_op_libraries, load_featurizer

log = logging.getLogger(__name__)


class Predictor:
    """The ensemble's branches and the featurizers they need, loaded once."""

    def __init__(self, paths: ProjectPaths, modalities: tuple[str, ...] = ("poster", "plot")) -> None:
        self.paths = paths
        self.genres = load_genres(paths.prepared)
        self.ensemble = EnsembleModel.load(paths.model("ensemble"))
        if self.ensemble.genres != self.genres:
            raise MovieGenreError(
                f"{paths.model('ensemble')}: fitted on other genres than {paths.prepared}; run `dvc repro`"
            )
        self.branches: dict[str, Branch[Any]] = {}
        for name in self.ensemble.branches:
            directory = paths.model(name)
            if not directory.is_dir():
                raise MovieGenreError(f"{directory}: not built yet (run `dvc repro` first)")
            if not set(NEEDS[branch_class(name).modality]) <= set(modalities):
                continue  # a plot-only movie does not pay for loading the poster (or fusion) models
            with quiet_tensorflow.first_import_filtered():  # a Keras branch's load imports TensorFlow
                branch = load_branch(directory)
            if branch.spec is None or branch.spec.genres != self.genres:
                raise MovieGenreError(f"{directory}: trained on other genres than {paths.prepared}; run `dvc repro`")
            self.ensemble.check_fitted_on(name, directory, paths.model("ensemble"))
            self.branches[name] = branch
        self.featurizers: dict[str, Featurize] = {}

    def _featurize(self, feature_set: str, values: list[str | None]) -> tuple[np.ndarray, dict[str, Any]]:
        """The movies that have the set's input, and their arrays (the featurizer loaded on first use)."""
        movies = np.array([i for i, v in enumerate(values) if v is not None], dtype=int)
        with quiet_tensorflow.first_import_filtered():  # the encoders' featurizers import TensorFlow
            if feature_set not in self.featurizers:
                self.featurizers[feature_set] = load_featurizer(feature_set, self.paths.features(feature_set))
            return movies, self.featurizers[feature_set]([str(values[i]) for i in movies])

    def load_featurizers(self) -> None:
        """Every featurizer the loaded branches read, now rather than on first use: a worker of a
        cluster loads them while it is in the project's directory, which their state files'
        relative paths (the sentence encoder's preset) are relative to."""
        wanted = dict.fromkeys(fs for branch in self.branches.values() for fs, _ in branch.sources().values())
        with quiet_tensorflow.first_import_filtered():
            for feature_set in wanted:
                if feature_set not in self.featurizers:
                    self.featurizers[feature_set] = load_featurizer(feature_set, self.paths.features(feature_set))

    def predict(self, posters: list[str | None], plots: list[str | None]) -> dict[str, np.ndarray]:
        """Probabilities (n, n_genres) per branch and 'ensemble'; NaN rows where a branch cannot see the movie
        (a poster branch: no poster; a plot branch: no plot; fusion: either missing)."""
        return self.predict_with_sets(posters, plots)[0]

    def predict_with_sets(
        self, posters: list[str | None], plots: list[str | None]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``predict``'s probabilities and each movie's genre set (as ``genre_sets`` gives it), from
        the one ensemble call that makes both: a caller that needs the sets does not combine the
        branches a second time.

        The feature sets are computed in threads, one each: loading and running the poster and
        the sentence encoder is mostly TensorFlow's C++ work, so the two overlap rather than
        queue. Each featurizer still loads once, and the arrays do not depend on the threads.
        """
        n, n_genres = len(posters), len(self.genres)
        given = {"poster": posters, "plot": plots}
        out = {name: np.full((n, n_genres), np.nan) for name in self.branches}
        scored = {name: rows for name, branch in self.branches.items()
                  if len(rows := seen_rows(branch.modality, posters, plots))}  # fmt: skip
        wanted = list(dict.fromkeys(fs for name in scored for fs, _ in self.branches[name].sources().values()))
        with quiet_tensorflow.first_import_filtered():
            import_op_libraries([fs for fs in wanted if fs not in self.featurizers])
        with ThreadPoolExecutor(max(1, len(wanted)), thread_name_prefix="featurize") as pool:
            pending = {fs: pool.submit(self._featurize, fs, given[MODALITY[fs]]) for fs in wanted}
            for name, rows in scored.items():
                branch = self.branches[name]
                fingerprint = sets_fingerprint(branch.feature_sets(), self.paths.features)
                arrays: dict[str, Any] = {}
                for key, (feature_set, array) in branch.sources().items():
                    try:
                        movies, set_arrays = pending[feature_set].result()
                    except MovieGenreError as exc:
                        if branch.spec is None or fingerprint == branch.spec.features_fingerprint:
                            raise
                        raise MovieGenreError(  # unreadable, and not the state the model was trained on
                            f"{self.paths.features(feature_set)}: fitted state differs from what "
                            f"{self.paths.model(name)} was trained on (refitted since, or damaged): "
                            "run `dvc checkout --force` on it, or `dvc repro`"
                        ) from exc
                    same = len(movies) == len(rows)  # rows are a subset of movies: the same movies
                    arrays[key] = set_arrays[array] if same else set_arrays[array][np.searchsorted(movies, rows)]
                branch.check_features(self.paths.model(name), arrays, fingerprint)
                proba = branch.predict_proba(branch.inputs(arrays))
                out[name][rows] = check_probabilities(proba, self.paths.model(name))
        out["ensemble"], sets = self.ensemble.predict({b: out[b] for b in self.branches})
        seen = ~np.isnan(out["ensemble"]).all(axis=1)
        check_probabilities(out["ensemble"][seen], self.paths.model("ensemble"))
        return out, sets

    def genre_sets(self, by_branch: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean (n, n_genres): each movie's genre set, at the thresholds fitted on val for the
        branches that saw it."""
        return self.ensemble.predict({b: by_branch[b] for b in self.branches})[1]


def check_probabilities(proba: np.ndarray, source: object) -> np.ndarray:
    """``proba`` if every value is a probability; a NaN or a value outside [0, 1] is never output."""
    bad = ~np.isfinite(proba) | (proba < 0) | (proba > 1)
    if bad.any():
        value = proba[bad].flat[0]
        raise MovieGenreError(
            f"{source}: gave {value!r} where a probability belongs (a damaged model); "
            f"run `dvc checkout --force {source}`"
        )
    return proba


def branches_used(by_branch: dict[str, np.ndarray], row: int) -> list[str]:
    """The branches that scored movie ``row``: poster branches, plot branches, then those on both,
    each in registry order."""
    seen = [b for b in NAMES if b in by_branch and not np.isnan(by_branch[b][row]).all()]
    order = {modality: i for i, modality in enumerate(NEEDS)}
    return sorted(seen, key=lambda b: order[branch_class(b).modality])


def seen_rows(modality: str, posters: list[str | None], plots: list[str | None]) -> np.ndarray:
    """The movies a branch of ``modality`` can score: those with every input it NEEDS."""
    given = {"poster": posters, "plot": plots}
    needs = NEEDS[modality]
    return np.array([i for i in range(len(posters)) if all(given[m][i] is not None for m in needs)], dtype=int)
