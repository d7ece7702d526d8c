"""Read params.yaml and validate the sections a stage reads, before it does any work.

params.yaml is the single place for settings. A typo fails in a second with the key's
name rather than an hour later inside a library.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from moviegenre.config.keys import Key, Schema, validate
from moviegenre.config.schema import SECTIONS
from moviegenre.config.settings import parse
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import PATHS

T = TypeVar("T")


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


def check_section(section: str, value: Any, rule: Key | Schema, path: Path) -> Any:
    """``value`` if it follows ``rule``; otherwise one error naming the key."""
    if isinstance(rule, Key):
        problem = rule.problem(value)
        if problem:
            raise MovieGenreError(f"{path}: '{section}' {problem}")
        return value
    return validate(section, value, rule, path)


def load_section(section: str, schema: Key | Schema | None = None, path: Path | str = PATHS.params) -> Any:
    """Load and validate one section; ``schema`` defaults to the data/feature/runtime sections' own."""
    path = Path(path)
    if schema is None:
        if section not in SECTIONS:
            raise MovieGenreError(f"no schema for params section '{section}'")
        schema = SECTIONS[section]
    loaded = load_yaml(path)
    if section not in loaded:
        raise MovieGenreError(f"{path}: missing section '{section}'")
    return check_section(section, loaded[section], schema, path)


def load_all(schema: Mapping[str, Key | Schema], path: Path | str = PATHS.params) -> dict[str, Any]:
    """Validate every section against ``schema``; an unknown or missing section is an error too."""
    path = Path(path)
    loaded = load_yaml(path)
    unknown = sorted(set(loaded) - set(schema))
    if unknown:
        raise MovieGenreError(f"{path}: unknown section '{unknown[0]}' (known: {', '.join(schema)})")
    missing = [name for name in schema if name not in loaded]
    if missing:
        raise MovieGenreError(f"{path}: missing section '{missing[0]}'")
    return {name: check_section(name, loaded[name], rule, path) for name, rule in schema.items()}


def load_settings(cls: type[T], section: str, path: Path | str = PATHS.params) -> T:
    """One section as its typed settings dataclass, validated by the dataclass's field rules."""
    path = Path(path)
    loaded = load_yaml(path)
    if section not in loaded:
        raise MovieGenreError(f"{path}: missing section '{section}'")
    return parse(cls, section, loaded[section], path)
