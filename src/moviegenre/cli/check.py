"""Validate the whole of params.yaml: every section, every key, the branches' included.

Each stage validates the sections it reads, but a key no stage reads (a typo such as
``data.timout_s``) would pass them all; the ``check_params`` stage, which depends on the whole
params file, runs this first on every `dvc repro` that follows an edit.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import create_model

from moviegenre.branches.registry import NAMES, branch_class
from moviegenre.config.params import load_params
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.config.sections import Seed
from moviegenre.config.settings import Settings
from moviegenre.data.prepare import PrepareSettings
from moviegenre.download.settings import DataSettings
from moviegenre.ensemble.settings import EnsembleSettings
from moviegenre.features.images import ImagesSettings
from moviegenre.features.poster_encoder import PosterEncoderSettings
from moviegenre.features.sentence_encoder import EmbedTextSettings
from moviegenre.features.text import TextSettings
from moviegenre.features.word2vec import Word2VecSettings


@cache
def params_model() -> type[Settings]:
    """The model of the whole file: one field per section, the branches' from the registry."""
    sections: dict[str, Any] = {
        "seed": Seed, "data": DataSettings, "prepare": PrepareSettings, "images": ImagesSettings,
        "text": TextSettings, "embed_text": EmbedTextSettings, "word2vec": Word2VecSettings,
        "runtime": RuntimeSettings, "embed_posters": PosterEncoderSettings,
        **{name: branch_class(name).Settings for name in NAMES}, "ensemble": EnsembleSettings,
    }  # fmt: skip
    fields: dict[str, Any] = {name: (kind, ...) for name, kind in sections.items()}  # ...: required
    return create_model("ParamsFile", __base__=Settings, **fields)


def check_params(path: Path) -> Settings:
    """Every section of ``path`` validated; raises naming the first bad, missing or unknown key or section."""
    return load_params(params_model(), path)
