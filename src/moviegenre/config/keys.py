"""The vocabulary of a params schema: typed keys with ranges, and validation of a section.

A schema is a mapping of key names to ``Key`` rules or nested schemas. Sections that
belong to a branch are declared beside the branch; the rest live in ``config.schema``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moviegenre.core.errors import MovieGenreError


@dataclass(frozen=True)
class Key:
    """One setting: accepted Python types, an optional range check, whether null is allowed."""

    types: tuple[type, ...]
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False
    describe: str = ""

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"must be {self.describe}, not null"
        if isinstance(value, bool) and bool not in self.types:
            return f"must be {self.describe}, not a boolean"
        if not isinstance(value, self.types):
            return f"must be {self.describe}, not {type(value).__name__} {value!r}"
        return self.check(value) if self.check else None


Schema = Mapping[str, "Key | Schema"]


def integer(lo: int | None = None, hi: int | None = None, nullable: bool = False) -> Key:
    return Key((int,), _range_check(lo, hi), nullable, _range_text("an integer", lo, hi))


def processes(most: int) -> Key:
    """A process count as joblib takes it: -1 for every core, else 1 to ``most`` (joblib refuses 0)."""

    def check(value: int) -> str | None:
        return None if value == -1 or 1 <= value <= most else f"must be -1 (every core) or in [1, {most}], not {value}"

    return Key((int,), check, describe=f"-1 (every core) or an integer in [1, {most}]")


def number(lo: float | None = None, hi: float | None = None, nullable: bool = False) -> Key:
    """A finite number: YAML's .nan and .inf pass every comparison or none, so they are refused first."""
    in_range = _range_check(lo, hi)

    def check(value: float) -> str | None:
        return f"must be a finite number, not {value!r}" if not math.isfinite(value) else in_range(value)

    return Key((int, float), check, nullable, _range_text("a number", lo, hi))


def boolean() -> Key:
    return Key((bool,), describe="true or false")


def choice(*options: str, nullable: bool = False, renamed: dict[str, str] | None = None) -> Key:
    """One of ``options``; ``renamed`` maps old values to their new names for the error message."""

    def check(value: str) -> str | None:
        if value in options:
            return None
        if renamed and value in renamed:
            return f"must be one of {', '.join(options)}, not {value!r} (renamed {renamed[value]!r})"
        return f"must be one of {', '.join(options)}, not {value!r}"

    return Key((str,), check, nullable, "one of " + ", ".join(options))


def text(pattern: str | None = None, nullable: bool = False, describe: str = "a string") -> Key:
    def check(value: str) -> str | None:
        if not value.strip():
            return "must not be empty"
        if pattern and not re.fullmatch(pattern, value):
            return f"must be {describe}, not {value!r}"
        return None

    return Key((str,), check, nullable, describe)


def number_map(
    keys: tuple[str, ...] | None = None, lo: float = 0.0, total: float | None = None, positive: bool = False
) -> Key:
    """A mapping of names to finite numbers >= ``lo`` (> ``lo`` if ``positive``): branch weights, split fractions.

    ``keys``: the names it may hold (all of them when ``total`` is given); ``total``: what the
    numbers must add up to.
    """

    def check(value: dict) -> str | None:
        for name, weight in value.items():
            if keys is not None and name not in keys:
                return f"has unknown name {name!r} (known: {', '.join(keys)})"
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                return f"{name} must be a finite number >= {lo}, not {weight!r}"
            if weight < lo or (positive and weight == lo):
                return f"{name} must be a number {'>' if positive else '>='} {lo}, not {weight!r}"
        missing = [name for name in keys or () if name not in value]
        if total is not None and missing:
            return f"is missing {missing[0]!r} (needs {', '.join(keys or ())})"
        if total is not None and not math.isclose(sum(value.values()), total, abs_tol=1e-9):
            return f"must add up to {total:g}, not {sum(value.values()):g}"
        return None

    return Key((dict,), check, describe="a mapping of names to numbers")


def string_list(options: tuple[str, ...]) -> Key:
    def check(value: list) -> str | None:
        bad = [v for v in value if v not in options]
        if bad or not value:
            return f"must be a non-empty list drawn from {', '.join(options)}, not {value!r}"
        return None

    return Key((list,), check, describe="a list of names")


def _range_check(lo: float | None, hi: float | None) -> Callable[[Any], str | None]:
    def check(value: float) -> str | None:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"must be in {_bounds(lo, hi)}, not {value!r}"
        return None

    return check


def _bounds(lo: float | None, hi: float | None) -> str:
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


def _range_text(kind: str, lo: float | None, hi: float | None) -> str:
    return kind if lo is None and hi is None else f"{kind} in {_bounds(lo, hi)}"


def validate(section: str, values: Any, schema: Schema, source: Path) -> dict[str, Any]:
    """Return ``values`` if it matches ``schema``; raise naming the first bad key otherwise."""
    if not isinstance(values, dict):
        raise MovieGenreError(f"{source}: section '{section}' must be a mapping of keys")
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise MovieGenreError(f"{source}: unknown key '{section}.{unknown[0]}' (known keys: {', '.join(schema)})")
    missing = [k for k in schema if k not in values]
    if missing:
        raise MovieGenreError(f"{source}: missing key '{section}.{missing[0]}'")
    for name, rule in schema.items():
        dotted = f"{section}.{name}"
        if isinstance(rule, Key):
            problem = rule.problem(values[name])
            if problem:
                raise MovieGenreError(f"{source}: '{dotted}' {problem}")
        else:
            validate(dotted, values[name], rule, source)
    return values
