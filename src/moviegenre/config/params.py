"""Read params.yaml and validate the sections a stage reads, before it does any work.

params.yaml is the single place for settings. A typo fails in a second with the key's
name rather than an hour later inside a library.

The YAML is read strictly: a duplicated key is an error rather than last-wins (one of two
values would be silently ignored), aliases are refused (a few lines of them expand to
gigabytes) and nesting is capped (the composer recurses), as is the file's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from moviegenre.config.sections import Seed
from moviegenre.config.settings import M, Settings, parse
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import PATHS

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


def load_settings(model: type[M], section: str, path: Path | str = PATHS.params) -> M:
    """One section of ``path`` as its settings model; one error naming the file and the key otherwise."""
    path = Path(path)
    loaded = load_yaml(path)
    if section not in loaded:
        raise MovieGenreError(f"{path}: missing section '{section}'")
    return parse(model, section, loaded[section], path)


class _Seed(Settings):
    seed: Seed


def load_seed(path: Path | str = PATHS.params) -> int:
    """The ``seed`` section: the one that is a value rather than a mapping of keys."""
    path = Path(path)
    loaded = load_yaml(path)
    if "seed" not in loaded:
        raise MovieGenreError(f"{path}: missing section 'seed'")
    return parse(_Seed, "", {"seed": loaded["seed"]}, path).seed


def load_params(model: type[M], path: Path | str = PATHS.params) -> M:
    """The whole of ``path`` as ``model``, one field per section: an unknown or missing section is an error too."""
    path = Path(path)
    return parse(model, "", load_yaml(path), path, entries="section")
