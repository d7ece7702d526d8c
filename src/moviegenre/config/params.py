"""Read params.yaml and validate the sections a stage reads, before it does any work.

params.yaml is the single place for settings. A typo fails in a second with the key's
name rather than an hour later inside a library.

The YAML is read strictly: a duplicated key is an error rather than last-wins (one of two
values would be silently ignored), aliases are refused (a few lines of them expand to
gigabytes) and nesting is capped (the composer recurses), as is the file's size.
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


MAX_BYTES = 1 << 20
MAX_DEPTH = 16


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} at line {line}")
        return super().construct_mapping(node, deep=deep)


def _check_events(text: str) -> None:
    """Refuse aliases and deep nesting before the (recursive) composer sees the document."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise yaml.YAMLError(f"alias *{event.anchor} at line {line}: aliases are not accepted; write the value out")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels at line {line}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def read_yaml(path: Path, what: str = "params file") -> Any:
    """The document in ``path``, read strictly (see the module's docstring); one-line errors."""
    if not path.is_file():
        raise MovieGenreError(f"{path}: {what} not found (run from the project root)")
    if path.stat().st_size > MAX_BYTES:
        raise MovieGenreError(f"{path}: larger than {MAX_BYTES >> 20} MB; not a {what}")
    try:
        text = path.read_text(encoding="utf-8")
        _check_events(text)
        return yaml.load(text, Loader=_StrictLoader)
    except UnicodeDecodeError as exc:
        raise MovieGenreError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise MovieGenreError(f"{path}: not valid YAML ({_first_line(exc)})") from exc


def _first_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}"
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = read_yaml(path)
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
