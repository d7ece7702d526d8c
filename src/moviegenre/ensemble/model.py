"""The fitted ensemble, saved as ``models/ensemble/ensemble.json`` for prediction to reuse.

A movie with only a plot is scored by the plot branches alone, so the ensemble keeps one
combiner per set of branches a movie can be seen by: all of them, the poster branches and
the plot branches. Each combiner holds its own combination (weights, or a stacker) and its
own genre thresholds, fitted on val with exactly those branches, so that a plot-only
movie's genre set is cut where plot-only probabilities are calibrated, not where the full
ensemble's are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text
from moviegenre.ensemble.combine import combine
from moviegenre.ensemble.stacking import Stacker
from moviegenre.evaluation.genre_sets import apply_thresholds

MODEL_FILE = "ensemble.json"


@dataclass(frozen=True)
class Combiner:
    """How one set of branches is combined: linear ``weights`` or a ``stacker``, plus thresholds."""

    branches: list[str]
    thresholds: list[float]
    weights: dict[str, float] | None = None
    stacker: Stacker | None = None

    def proba(self, by_branch: dict[str, np.ndarray]) -> np.ndarray:
        if self.stacker is not None:
            return self.stacker.predict(by_branch)
        assert self.weights is not None
        return combine({b: by_branch[b] for b in self.branches}, self.weights)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"branches": self.branches}
        if self.weights is not None:
            out["weights"] = self.weights
        if self.stacker is not None:
            out["stacker"] = self.stacker.to_json()
        return out | {"thresholds": self.thresholds}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Combiner:
        stacker = data.get("stacker")
        return Combiner(
            data["branches"], data["thresholds"], data.get("weights"), Stacker(**stacker) if stacker else None
        )


@dataclass(frozen=True)
class EnsembleModel:
    method: str
    genres: list[str]
    combiners: list[Combiner]  # the first one uses every branch

    @property
    def branches(self) -> list[str]:
        return self.combiners[0].branches

    @property
    def weights(self) -> dict[str, float] | None:
        return self.combiners[0].weights

    def combiner_for(self, seen: Iterable[str]) -> Combiner | None:
        wanted = set(seen)
        return next((c for c in self.combiners if set(c.branches) == wanted), None)

    def predict(self, by_branch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble probabilities and genre sets for rows where some branches may be NaN.

        Rows are grouped by the branches that saw them and each group goes through its own
        combiner; a group without one (a set of branches the ensemble was not fitted for)
        falls back to the full combiner's weights renormalised over what it saw, or stays
        NaN under stacking, which cannot drop a feature it was fitted with.
        """
        names = [b for b in self.branches if b in by_branch]
        n = len(next(iter(by_branch.values())))
        proba = np.full((n, len(self.genres)), np.nan)
        sets = np.zeros((n, len(self.genres)), dtype=bool)
        seen = np.stack([~np.isnan(by_branch[b]).all(axis=1) for b in names], axis=1) if names else np.zeros((n, 0))
        for pattern in {tuple(row) for row in seen}:
            rows = np.flatnonzero((seen == np.array(pattern)).all(axis=1))
            present = [b for b, on in zip(names, pattern, strict=True) if on]
            if not present:
                continue
            part = {b: by_branch[b][rows] for b in present}
            combiner = self.combiner_for(present)
            if combiner is not None:
                proba[rows] = combiner.proba(part)
                sets[rows] = apply_thresholds(proba[rows], combiner.thresholds)
            elif self.weights is not None:
                proba[rows] = combine(part, {b: self.weights[b] for b in present})
                sets[rows] = apply_thresholds(proba[rows], self.combiners[0].thresholds)
        return proba, sets

    def save(self, directory: Path) -> None:
        data = {"method": self.method, "genres": self.genres, "combiners": [c.to_json() for c in self.combiners]}
        with atomic_dir(directory) as tmp:
            (tmp / MODEL_FILE).write_text(json_text(data))

    @staticmethod
    def load(directory: Path) -> EnsembleModel:
        path = directory / MODEL_FILE
        if not path.is_file():
            raise MovieGenreError(f"{path}: not found (run `dvc repro` first, or `dvc checkout {directory}`)")
        try:
            data = json.loads(path.read_text())
            return EnsembleModel(data["method"], data["genres"], [Combiner.from_json(c) for c in data["combiners"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise MovieGenreError(f"{path}: not an ensemble model ({exc}); run `dvc repro`") from exc
