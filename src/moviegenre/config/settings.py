"""Typed settings: a frozen dataclass per params section, validated once by its fields' rules.

Each field carries its ``Key`` rule (``setting(integer(1, 100))``), so one declaration gives
both the schema that names a bad key in params.yaml and the typed object the code reads
(``settings.epochs``, not ``settings["epochs"]``). A field whose type is itself a settings
dataclass is a nested group of keys (``image_dl.backbone.name``). No field has a default:
params.yaml is the one place where values live, and a spec written with other keys is
refused rather than filled in.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from moviegenre.config.keys import Key, Schema, validate

T = TypeVar("T")
_RULE = "rule"


def setting(rule: Key) -> Any:
    """A settings field validated by ``rule``."""
    return dataclasses.field(metadata={_RULE: rule})


def group() -> Any:
    """A settings field that is a settings dataclass of its own: a nested params group, whose keys it checks."""
    return dataclasses.field()


def _nested(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are settings dataclasses themselves, by name."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def schema_of(cls: type) -> Schema:
    """The params schema of a settings dataclass (nested groups as nested schemas)."""
    nested = _nested(cls)
    return {
        f.name: schema_of(nested[f.name]) if f.name in nested else f.metadata[_RULE] for f in dataclasses.fields(cls)
    }


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of ``cls`` from values that passed ``schema_of(cls)``; lists become tuples (frozen)."""
    nested = _nested(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = values[f.name]
        if f.name in nested:
            value = build(nested[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def parse(cls: type[T], section: str, values: Any, source: Path) -> T:
    """Validate ``values`` as params section ``section`` of ``source``, then build the typed settings."""
    return build(cls, validate(section, values, schema_of(cls), source))


def to_dict(settings: Any) -> dict[str, Any]:
    """Plain JSON-ready values (tuples as lists), as written into a model's spec.json."""
    return _plain(dataclasses.asdict(settings))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
