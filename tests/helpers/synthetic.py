"""Tiny generated datasets in both source layouts, with a learnable signal.

Each genre has its own words (in plots) and its own colour (in posters), so the models
have something real to learn from a few dozen movies.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

GENRES = ["Drama", "Comedy", "Horror", "Action", "Romance"]
_WORDS = {
    "Drama": "family loss grief struggle tears",
    "Comedy": "funny hilarious joke prank laugh",
    "Horror": "ghost blood scream haunted demon",
    "Action": "explosion chase gun fight mission",
    "Romance": "love kiss wedding heart passion",
}
_COLOURS = {
    "Drama": (40, 40, 120),
    "Comedy": (250, 220, 40),
    "Horror": (10, 10, 10),
    "Action": (220, 40, 20),
    "Romance": (250, 120, 180),
}
_FILLER = ["the", "a", "story", "of", "man", "woman", "who", "city", "finds", "when", "after"]


def make_movies(n: int, seed: int = 0) -> list[dict]:
    """``n`` movies with one or two genres each, every genre well represented."""
    rng = np.random.default_rng(seed)
    movies = []
    for i in range(n):
        first = GENRES[i % len(GENRES)]
        movie_genres = [first]
        if rng.random() < 0.4:
            second = GENRES[int(rng.integers(len(GENRES)))]
            if second != first:
                movie_genres.append(second)
        words = []
        for g in movie_genres:
            words += list(rng.choice(_WORDS[g].split(), size=4))
        words += list(rng.choice(_FILLER, size=8))
        rng.shuffle(words)
        movies.append(
            {
                "id": f"{1000000 + i:07d}",
                "title": f"Movie {i}",
                "year": 1950 + i % 70,
                "genres": movie_genres,
                "plot": " ".join(words) + " .",
            }
        )
    return movies


def poster_bytes(movie_genres: list[str], seed: int, size: tuple[int, int] = (60, 90)) -> bytes:
    """A JPEG whose colours follow the genres, with noise so no two are equal."""
    rng = np.random.default_rng(seed)
    w, h = size
    colours = [_COLOURS.get(g, (128, 128, 128)) for g in movie_genres]
    pixels = np.tile(np.array(colours[0], dtype=float), (h, w, 1))
    if len(colours) > 1:
        pixels[h // 2 :] = colours[1]
    pixels += rng.normal(0, 25, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def write_mmimdb_dir(root: Path, movies: list[dict], poster_every: int = 1, seed: int = 0) -> Path:
    """MM-IMDb layout under ``root/mmimdb/dataset``; every ``poster_every``-th movie gets a poster."""
    dataset = root / "mmimdb" / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    for i, movie in enumerate(movies):
        record = {
            "title": movie["title"],
            "year": movie["year"],
            "genres": movie["genres"],
            "plot": [movie["plot"]],
            "imdb id": movie["id"],
        }
        (dataset / f"{movie['id']}.json").write_text(json.dumps(record))
        if poster_every and i % poster_every == 0:
            (dataset / f"{movie['id']}.jpeg").write_bytes(poster_bytes(movie["genres"], seed + i))
    return dataset


def make_mmimdb_archive(path: Path, n: int = 60, poster_every: int = 1, seed: int = 0) -> Path:
    """A .tar.gz in the MM-IMDb layout with ``n`` movies."""
    staging = path.parent / (path.name + ".staging")
    write_mmimdb_dir(staging, make_movies(n, seed), poster_every, seed)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / "mmimdb", arcname="mmimdb")
    return path


def write_tiny_bert_preset(directory: Path, seed: int = 0) -> Path:
    """A one-layer BERT (random weights) whose vocabulary is the generated plots' words, as a KerasHub preset.

    Enough for the pipeline's mechanics (embed_text, the text_encoder branch, predict) without
    the 90 MB checkpoint; the shared checkpoint is tested for meaning elsewhere.
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    words = sorted({w for text in _WORDS.values() for w in text.split()} | set(_FILLER) | {"."})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=64,
    )  # fmt: skip
    backbone.save_to_preset(str(directory))
    return directory
