"""Read params.yaml and validate one section against its schema.

params.yaml is the single place for settings. Each stage validates the sections it reads
before doing any work, so a typo fails in a second with the key's name rather than an hour
later inside a library. The schema here is the contract; params.yaml documents each key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moviegenre.errors import MovieGenreError

DEFAULT_PARAMS = Path("params.yaml")


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


def number(lo: float | None = None, hi: float | None = None, nullable: bool = False) -> Key:
    return Key((int, float), _range_check(lo, hi), nullable, _range_text("a number", lo, hi))


def boolean() -> Key:
    return Key((bool,), describe="true or false")


def choice(*options: str, nullable: bool = False) -> Key:
    def check(value: str) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}, not {value!r}"

    return Key((str,), check, nullable, "one of " + ", ".join(options))


def text(pattern: str | None = None, nullable: bool = False, describe: str = "a string") -> Key:
    def check(value: str) -> str | None:
        if not value.strip():
            return "must not be empty"
        if pattern and not re.fullmatch(pattern, value):
            return f"must be {describe}, not {value!r}"
        return None

    return Key((str,), check, nullable, describe)


def number_map(keys: tuple[str, ...] | None = None, lo: float = 0.0) -> Key:
    """A mapping of names to non-negative numbers (branch weights, split fractions)."""

    def check(value: dict) -> str | None:
        for name, weight in value.items():
            if keys is not None and name not in keys:
                return f"has unknown name {name!r} (known: {', '.join(keys)})"
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < lo:
                return f"{name} must be a number >= {lo}, not {weight!r}"
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


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MovieGenreError(f"{path}: params file not found (run from the project root)")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MovieGenreError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(loaded, dict):
        raise MovieGenreError(f"{path}: must be a mapping of sections")
    return loaded


def load_section(section: str, path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Load and validate one section of params.yaml (``seed`` is a top-level integer)."""
    from moviegenre.schema import SCHEMA

    path = Path(path)
    loaded = load_yaml(path)
    if section not in SCHEMA:
        raise MovieGenreError(f"no schema for params section '{section}'")
    if section not in loaded:
        raise MovieGenreError(f"{path}: missing section '{section}'")
    rule = SCHEMA[section]
    if isinstance(rule, Key):
        problem = rule.problem(loaded[section])
        if problem:
            raise MovieGenreError(f"{path}: '{section}' {problem}")
        return loaded[section]
    return validate(section, loaded[section], rule, path)


def load_all(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Validate every section; unknown top-level sections are errors too."""
    from moviegenre.schema import SCHEMA

    path = Path(path)
    loaded = load_yaml(path)
    unknown = sorted(set(loaded) - set(SCHEMA))
    if unknown:
        raise MovieGenreError(f"{path}: unknown section '{unknown[0]}'")
    return {name: load_section(name, path) for name in SCHEMA}
