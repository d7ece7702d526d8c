"""Validate the whole of params.yaml: every section, every key, the branches' included.

Each stage validates the sections it reads, but a key no stage reads (a typo such as
``data.timout_s``) would pass them all; the ``check_params`` stage, which depends on the whole
params file, runs this first on every `dvc repro` that follows an edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moviegenre.branches.registry import NAMES, branch_class
from moviegenre.config.keys import Key, Schema
from moviegenre.config.params import load_all
from moviegenre.config.schema import SECTIONS
from moviegenre.config.settings import schema_of
from moviegenre.ensemble.settings import SCHEMA as ENSEMBLE_SCHEMA
from moviegenre.features.poster_encoder import PosterEncoderSettings


def full_schema() -> dict[str, Key | Schema]:
    features = {"embed_posters": schema_of(PosterEncoderSettings)}
    branches = {name: branch_class(name).schema() for name in NAMES}
    return {**SECTIONS, **features, **branches, "ensemble": ENSEMBLE_SCHEMA}


def check_params(path: Path) -> dict[str, Any]:
    """Every section of ``path`` validated; raises naming the first bad or unknown key."""
    return load_all(full_schema(), path)
