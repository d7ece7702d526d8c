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

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import Field, ValidationError, model_validator

from moviegenre.branches.base import SPEC
from moviegenre.config.settings import Number, Settings, checked, explain
from moviegenre.core.digests import check_digests, digests_problem, file_digests, sha256_file
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, read_json
from moviegenre.ensemble.combine import Average, combine
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
        try:
            EnsembleFile.model_validate(data)
        except ValidationError as exc:
            problem = explain(exc, EnsembleFile, entries="field")
            raise MovieGenreError(f"{path}: not an ensemble model ({problem}); run `dvc repro -s ensemble`") from None
        combiners = [Combiner.from_json(c) for c in data["combiners"]]
        return EnsembleModel(data["method"], data["genres"], combiners, data["average"], data["fitted_on"])


Name = Annotated[str, Field(min_length=1)]
Names = Annotated[
    list[Name], Field(min_length=1), checked(lambda names: len(set(names)) == len(names), "distinct names")
]


class StackerFile(Settings):
    branches: Names
    coef: list[list[Number]]  # one row per genre, one column per branch
    intercept: list[Number]


class CombinerFile(Settings):
    branches: Names
    weights: dict[str, Annotated[Number, Field(ge=0)]] | None = None  # or a stacker
    stacker: StackerFile | None = None
    thresholds: list[Annotated[Number, Field(ge=0, le=1)]]


class EnsembleFile(Settings):
    """The schema of ``ensemble.json``, with what ties its parts together (``load`` refuses the rest)."""

    method: Method
    average: Average
    genres: Names
    combiners: Annotated[list[CombinerFile], Field(min_length=1)]  # the first one uses every branch
    fitted_on: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> EnsembleFile:
        everything = self.combiners[0].branches
        for i, combiner in enumerate(self.combiners):
            problem = _combiner_problem(combiner, len(self.genres), everything)
            if problem:
                raise ValueError(f"combiners[{i}]: {problem}")
        if not set(self.fitted_on) <= set(everything):
            raise ValueError("fitted_on must map branches of the first combiner to their spec's sha256")
        problem = digests_problem(self.fitted_on) if self.fitted_on else None  # empty: nothing was recorded
        if problem:
            raise ValueError(f"fitted_on: {problem}")
        return self


def _combiner_problem(combiner: CombinerFile, n_genres: int, everything: list[str]) -> str | None:
    branches, stacker = combiner.branches, combiner.stacker
    if not set(branches) <= set(everything):
        return "branches must be distinct names, a subset of the first combiner's"
    if len(combiner.thresholds) != n_genres:
        return f"thresholds must be a list of {n_genres} numbers (one per genre)"
    if (combiner.weights is None) == (stacker is None):
        return "needs weights or a stacker (one of them)"
    if combiner.weights is not None:
        if set(combiner.weights) != set(branches):
            return "weights must give one number per branch"
        return "weights must not be all zero" if sum(combiner.weights.values()) <= 0 else None
    assert stacker is not None
    if stacker.branches != branches:
        return "stacker's branches differ from the combiner's"
    if len(stacker.intercept) != n_genres:
        return f"stacker intercept must be {n_genres} finite numbers"
    if len(stacker.coef) != n_genres or any(len(row) != len(branches) for row in stacker.coef):
        return f"stacker coef must be {n_genres} rows of {len(branches)} finite numbers"
    return None
