"""Every registered branch at its tiniest, and the embedding sets that let all of them train on generated data.

``featurized`` (tests/conftest.py) builds the image and text features; ``write_fake_embeddings``
adds the two encoder sets without running an encoder: random unit vectors, the plot set over
every movie, the poster set over the movies with a poster, as ``embed_text`` and ``embed_posters``
lay them out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from helpers import PROJECT_ROOT
from helpers.builders import PATHS
from moviegenre.data.table import load_prepared
from moviegenre.features.store import INDEX, write_arrays

# params.yaml's section of each branch, with these keys changed: one epoch, a few trees, a few units.
SMALLER: dict[str, dict[str, Any]] = {
    "image_ml": {"n_estimators": 4},
    "text_ml": {"n_estimators": 4},
    "text_linear": {"max_iter": 100},
    "image_dl": {"epochs": 1, "batch_size": 16},
    "text_dl": {"arch": "mlp", "epochs": 1, "batch_size": 16, "hidden_units": 4},
    "text_encoder": {"hidden_units": 0, "epochs": 1, "batch_size": 16},
    "image_encoder": {"epochs": 1, "batch_size": 16},
    "encoder_fusion": {"epochs": 1, "batch_size": 16},
    "fusion": {"text_input": "counts", "units": 4, "conv_filters": 2, "epochs": 1, "batch_size": 16},
}
PLOT_DIM, POSTER_DIM = 6, 5


def tiny_settings(name: str) -> dict[str, Any]:
    """Branch ``name``'s params.yaml section with the keys of ``SMALLER`` changed."""
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    return params[name] | SMALLER[name]


def write_fake_embeddings() -> None:
    """data/features/plot/embeddings (every movie) and data/features/poster/poster_embeddings (those with a poster)."""
    table, _ = load_prepared(PATHS.prepared)
    rng = np.random.default_rng(0)
    for feature_set, movies, dim in (
        ("embeddings", table, PLOT_DIM),
        ("poster_embeddings", table[table["poster"].notna()], POSTER_DIM),
    ):
        directory = PATHS.features(feature_set)
        directory.mkdir(parents=True)
        movies[["id", "split"]].to_csv(directory / INDEX, index=False)
        vectors = rng.normal(size=(len(movies), dim)).astype(np.float32)
        write_arrays(directory, {"embeddings": vectors / np.linalg.norm(vectors, axis=1, keepdims=True)})
        (directory / "encoder.json").write_text('{"preset": "fake"}')
