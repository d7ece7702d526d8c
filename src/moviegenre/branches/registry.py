"""The branch list, read from ``registry.yaml``: names, classes, and what each train stage depends on.

The list is data because dvc.yaml generates one ``train@<name>`` stage per entry from the same
file (``vars``). A branch class is imported only when asked for, so the train stage of one
branch runs (and depends on) that branch's module alone, not every branch's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from moviegenre.branches.base import Branch, read_spec
from moviegenre.core.errors import MovieGenreError

REGISTRY = Path(__file__).with_name("registry.yaml")


@dataclass(frozen=True)
class Entry:
    """One branch of the list: its class (``module:Class``), own module, feature folder, description,
    and whether it fits in epochs (and so has training curves to draw)."""

    name: str
    target: str
    code: str
    features: str
    description: str
    epochs: bool


@cache
def entries() -> dict[str, Entry]:
    """Every branch by name, in the file's order."""
    loaded = yaml.safe_load(REGISTRY.read_text())["branches"]
    return {
        name: Entry(
            name, entry["class"], entry["code"], entry["features"], entry["description"], entry.get("epochs", False)
        )
        for name, entry in loaded.items()
    }


NAMES: tuple[str, ...] = tuple(entries())


def branch_class(name: str) -> type[Branch[Any]]:
    if name not in entries():
        raise MovieGenreError(f"unknown branch {name!r} (known: {', '.join(NAMES)})")
    module, _, attribute = entries()[name].target.partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    if not (isinstance(cls, type) and issubclass(cls, Branch)) or cls.name != name:
        raise MovieGenreError(f"{REGISTRY}: {name}'s class {entries()[name].target} is not the Branch named {name!r}")
    return cls


def load_branch(directory: Path) -> Branch[Any]:
    """The trained branch of ``models/<name>/``: its spec must name the directory's branch."""
    name = directory.name
    if name not in entries():
        return branch_class(read_spec(directory).branch).load(directory)  # outside models/: trust the spec's name
    return branch_class(name).load(directory)
