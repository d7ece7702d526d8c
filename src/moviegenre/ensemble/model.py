"""The fitted ensemble, saved as ``models/ensemble/ensemble.json`` for prediction to reuse.

A movie with only a plot is scored by the plot branches alone, so the ensemble keeps one
combiner per set of branches a movie can be seen by: all of them, the poster branches and
the plot branches. Each combiner holds its own combination (weights, or a stacker) and its
own genre thresholds, fitted on val with exactly those branches, so that a plot-only
movie's genre set is cut where plot-only probabilities are calibrated, not where the full
ensemble's are.

``digests.json`` beside it records ensemble.json's sha256, and the file is checked against a
schema when it loads: an edited or damaged combiner (a branch left out, NaN or negative
weights, thresholds outside [0, 1]) is refused, never used to predict.

``fitted_on`` records the sha256 of each branch's ``spec.json`` when the ensemble was fitted.
The spec lists the sha256 of every file of its model, so it names the model exactly: a branch
retrained on its own (`dvc repro train@<branch>`, a run killed before the ensemble stage, a
model checked out from another revision) no longer matches, and its probabilities would be
weighted and cut at thresholds fitted for another model's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from moviegenre.branches.base import SPEC
from moviegenre.core.digests import check_digests, digests_problem, file_digests, sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, read_json
from moviegenre.ensemble.combine import AVERAGES, combine
from moviegenre.ensemble.stacking import Stacker
from moviegenre.evaluation.genre_sets import apply_thresholds

MODEL_FILE = "ensemble.json"
DIGESTS = "digests.json"
Method = Literal["mean", "weighted", "val", "stack"]  # here, not in ensemble.settings: no import of the branch list
METHODS: tuple[str, ...] = get_args(Method)


@dataclass(frozen=True)
class Combiner:
    """How one set of branches is combined: linear ``weights`` or a ``stacker``, plus thresholds."""

    branches: list[str]
    thresholds: list[float]
    weights: dict[str, float] | None = None
    stacker: Stacker | None = None

    def proba(self, by_branch: dict[str, np.ndarray], average: str = "probabilities") -> np.ndarray:
        if self.stacker is not None:
            return self.stacker.predict(by_branch)
        assert self.weights is not None
        return combine({b: by_branch[b] for b in self.branches}, self.weights, average)

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
    average: str = "probabilities"  # what weights average: probabilities or logits (ensemble.average)
    fitted_on: dict[str, str] = field(default_factory=dict)  # branch -> sha256 of its spec.json at fitting

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
                proba[rows] = combiner.proba(part, self.average)
                sets[rows] = apply_thresholds(proba[rows], combiner.thresholds)
            elif self.weights is not None:
                proba[rows] = combine(part, {b: self.weights[b] for b in present}, self.average)
                sets[rows] = apply_thresholds(proba[rows], self.combiners[0].thresholds)
        return proba, sets

    def check_fitted_on(self, branch: str, model_dir: Path, ensemble_dir: Path) -> None:
        """Refuse a branch model other than the one the ensemble was fitted with (see the module).

        A branch the ensemble recorded nothing for (a model saved by hand, without a stage) is
        taken as it is.
        """
        expected = self.fitted_on.get(branch)
        if expected is None or sha256_file(model_dir / SPEC) == expected:
            return
        raise MovieGenreError(
            f"{model_dir}: not the model {ensemble_dir} was fitted with (retrained or checked out since); "
            "run `dvc repro --force -s ensemble` to refit the ensemble on it"
        )

    def save(self, directory: Path) -> None:
        data = {"method": self.method, "average": self.average, "genres": self.genres,
                "combiners": [c.to_json() for c in self.combiners], "fitted_on": self.fitted_on}  # fmt: skip
        with atomic_dir(directory) as tmp:
            (tmp / MODEL_FILE).write_text(json_text(data))
            (tmp / DIGESTS).write_text(json_text(file_digests(tmp, exclude=(DIGESTS,))))

    @staticmethod
    def load(directory: Path) -> EnsembleModel:
        path = directory / MODEL_FILE
        fix = (
            f"run `dvc checkout --force {directory}`, "
            "or `dvc repro --force -s ensemble` if the DVC cache holds the same bytes"
        )
        digests = read_json(directory / DIGESTS, fix)
        problem = digests_problem(digests)
        if problem or MODEL_FILE not in digests:
            raise MovieGenreError(f"{directory / DIGESTS}: {problem or 'no digest of ' + MODEL_FILE}; {fix}")
        check_digests(directory, digests, directory / DIGESTS, fix)
        data = read_json(path, fix)
        problem = ensemble_problem(data)
        if problem:
            raise MovieGenreError(f"{path}: not an ensemble model ({problem}); run `dvc repro -s ensemble`")
        combiners = [Combiner.from_json(c) for c in data["combiners"]]
        return EnsembleModel(data["method"], data["genres"], combiners, data["average"], data["fitted_on"])


def ensemble_problem(data: Any) -> str | None:
    """What is wrong with an ensemble.json document, or None."""
    if not isinstance(data, dict) or set(data) != {"method", "average", "genres", "combiners", "fitted_on"}:
        return "needs exactly method, average, genres and combiners, plus fitted_on"
    if data["method"] not in METHODS:
        return f"method {data['method']!r} is not one of {', '.join(METHODS)}"
    if data["average"] not in AVERAGES:
        return f"average {data['average']!r} is not one of {', '.join(AVERAGES)}"
    genres = data["genres"]
    if not _names(genres):
        return "genres must be a list of distinct names"
    combiners = data["combiners"]
    if not isinstance(combiners, list) or not combiners:
        return "combiners must be a non-empty list"
    everything = combiners[0].get("branches") if isinstance(combiners[0], dict) else None
    for i, combiner in enumerate(combiners):
        problem = _combiner_problem(combiner, len(genres), everything)
        if problem:
            return f"combiners[{i}]: {problem}"
    return _fitted_on_problem(data["fitted_on"], everything or [])


def _fitted_on_problem(fitted_on: Any, everything: list[str]) -> str | None:
    if not isinstance(fitted_on, dict) or not set(fitted_on) <= set(everything):
        return "fitted_on must map branches of the first combiner to their spec's sha256"
    problem = digests_problem(fitted_on) if fitted_on else None  # empty: nothing was recorded
    return f"fitted_on: {problem}" if problem else None


def _names(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        and len(set(value)) == len(value)
    )  # fmt: skip


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _combiner_problem(combiner: Any, n_genres: int, everything: Any) -> str | None:
    if not isinstance(combiner, dict):
        return "not an object"
    if not set(combiner) <= {"branches", "weights", "stacker", "thresholds"}:
        return f"unknown keys {sorted(set(combiner) - {'branches', 'weights', 'stacker', 'thresholds'})}"
    branches: Any = combiner.get("branches")
    if not _names(branches) or not _names(everything) or not set(branches) <= set(everything):
        return "branches must be distinct names, a subset of the first combiner's"
    thresholds = combiner.get("thresholds")
    if not isinstance(thresholds, list) or len(thresholds) != n_genres:
        return f"thresholds must be a list of {n_genres} numbers (one per genre)"
    if not all(_finite(t) and 0 <= t <= 1 for t in thresholds):
        return "thresholds must be numbers in [0, 1]"
    if ("weights" in combiner) == ("stacker" in combiner):
        return "needs weights or a stacker (one of them)"
    if "weights" in combiner:
        weights = combiner["weights"]
        if not isinstance(weights, dict) or set(weights) != set(branches):
            return "weights must give one number per branch"
        if not all(_finite(w) and w >= 0 for w in weights.values()) or sum(weights.values()) <= 0:
            return "weights must be finite, non-negative and not all zero"
        return None
    stacker = combiner["stacker"]
    if not isinstance(stacker, dict) or set(stacker) != {"branches", "coef", "intercept"}:
        return "stacker needs branches, coef and intercept"
    if stacker["branches"] != branches:
        return "stacker's branches differ from the combiner's"
    coef, intercept = stacker["coef"], stacker["intercept"]
    if not isinstance(intercept, list) or len(intercept) != n_genres or not all(_finite(v) for v in intercept):
        return f"stacker intercept must be {n_genres} finite numbers"
    if (
        not isinstance(coef, list) or len(coef) != n_genres
        or not all(isinstance(row, list) and len(row) == len(branches) and all(_finite(v) for v in row) for row in coef)
    ):  # fmt: skip
        return f"stacker coef must be {n_genres} rows of {len(branches)} finite numbers"
    return None
