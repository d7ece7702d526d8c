"""The ensemble's params section: how to combine, and which branches (names from the registry)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from moviegenre.branches.registry import NAMES
from moviegenre.config.settings import Number, Settings
from moviegenre.ensemble.combine import Average
from moviegenre.ensemble.model import Method
from moviegenre.evaluation.genre_sets import ThresholdMethod


def _branch(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"has unknown name {name!r} (known: {', '.join(NAMES)})")
    return name


BranchName = Annotated[str, AfterValidator(_branch)]


def _branches(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value or not all(name in NAMES for name in value):
        raise ValueError(f"must be a non-empty list drawn from {', '.join(NAMES)}, not {value!r}")
    return tuple(value)


class EnsembleSettings(Settings):
    method: Method
    average: Average
    weights: dict[BranchName, Annotated[Number, Field(ge=0)]]  # method weighted; a branch not named: 1
    branches: Annotated[tuple[str, ...], BeforeValidator(_branches)]
    stack_C: Number = Field(ge=1e-6, le=1e6)
    stack_folds: int = Field(ge=2, le=20)
    thresholds: ThresholdMethod
