"""Predict genres for new movies from the artifacts `dvc repro` produced.

Branches load themselves from ``models/<branch>/`` through the Branch interface, and the
features of new movies come from the featurizers the feature stages saved (PCA and colour
statistics, vectorisers, tokenizer), through the same functions the stages ran. A movie is
scored by the branches that can see it (a poster: the poster branches; a plot: the plot
branches) and the ensemble weights are renormalised over those. A model whose spec does not
match today's features is refused with one line. Nothing here imports a training loop.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from moviegenre.branches.base import Branch
from moviegenre.branches.registry import NAMES, branch_class, load_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.table import load_genres
from moviegenre.ensemble.combine import combine
from moviegenre.features.sets import Featurize, features_fingerprint, load_featurizer

log = logging.getLogger(__name__)

class Predictor:
    """The ensemble's branches and the featurizers they need, loaded once."""

    def __init__(self, paths: ProjectPaths, modalities: tuple[str, ...] = ("poster", "plot")) -> None:
        self.paths = paths
        self.genres = load_genres(paths.prepared)
        ensemble_metrics = paths.metrics / "ensemble.json"
        if not ensemble_metrics.is_file():
            raise MovieGenreError(f"{ensemble_metrics}: not built yet (run `dvc repro` first)")
        self.weights: dict[str, float] = json.loads(ensemble_metrics.read_text())["weights"]
        self.branches: dict[str, Branch] = {}
        for name in self.weights:
            directory = paths.model(name)
            if not directory.is_dir():
                raise MovieGenreError(f"{directory}: not built yet (run `dvc repro` first)")
            if branch_class(name).modality not in modalities:
                continue  # a plot-only movie does not pay for loading the poster models
            branch = load_branch(directory)
            if branch.spec is None or branch.spec.genres != self.genres:
                raise MovieGenreError(f"{directory}: trained on other genres than {paths.prepared}; run `dvc repro`")
            self.branches[name] = branch
        self.featurizers: dict[str, Featurize] = {}

    def _arrays(self, feature_set: str, inputs: list[str]) -> dict[str, Any]:
        if feature_set not in self.featurizers:
            self.featurizers[feature_set] = load_featurizer(feature_set, self.paths.features(feature_set))
        return self.featurizers[feature_set](inputs)

    def predict(self, posters: list[str | None], plots: list[str | None]) -> dict[str, np.ndarray]:
        """Probabilities (n, n_genres) per branch and 'ensemble'; NaN rows where a branch cannot see the movie."""
        n, n_genres = len(posters), len(self.genres)
        by_modality = {"poster": posters, "plot": plots}
        out = {name: np.full((n, n_genres), np.nan) for name in self.branches}
        arrays_by_set: dict[str, dict[str, Any]] = {}
        for name, branch in self.branches.items():
            values = by_modality[branch.modality]
            rows = np.array([i for i, v in enumerate(values) if v is not None], dtype=int)
            if not len(rows):
                continue
            if branch.feature_set not in arrays_by_set:
                arrays_by_set[branch.feature_set] = self._arrays(branch.feature_set, [values[i] for i in rows])
            arrays = arrays_by_set[branch.feature_set]
            directory = self.paths.features(branch.feature_set)
            branch.check_features(
                self.paths.model(name), arrays, features_fingerprint(branch.feature_set, directory, branch.reads())
            )
            out[name][rows] = branch.predict_proba(branch.inputs(arrays))
        out["ensemble"] = combine(out, {b: w for b, w in self.weights.items() if b in out})
        return out


def branches_used(by_branch: dict[str, np.ndarray], row: int) -> list[str]:
    """The branches that scored movie ``row``: poster branches first, in registry order."""
    seen = [b for b in NAMES if b in by_branch and not np.isnan(by_branch[b][row]).all()]
    return sorted(seen, key=lambda b: branch_class(b).modality != "poster")
