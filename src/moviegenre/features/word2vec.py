"""Word vectors for text_dl's Embedding: gensim word2vec on the text training plots.

- Trained on the plots of the rows of ``data/features/text/index.csv`` whose split is train,
  the movies the tokenizer was fitted on, so no val or test plot shapes the vectors.
- Words come from the project's tokenizer (same regex, same lower-casing), and the matrix is
  laid out by the tokenizer's ids: row ``i`` is the vector of the word with id ``i``, so the
  Embedding layer can start from it as is. Padding (0), "any other word" (1) and the words
  gensim dropped (fewer than ``min_count`` occurrences) get zero rows.
- gensim sees every word of the training plots, not only the tokenizer's vocabulary: rare
  words are still context for the frequent ones.
- One worker thread and the params seed: gensim is then deterministic and the same inputs
  give the same bytes, so DVC does not retrain text_dl for nothing.

The vectors are a fit-time input only: the trained Keras model holds its Embedding, so
prediction never reads them.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from moviegenre.config.settings import Settings, to_dict
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text
from moviegenre.data.table import TABLE_NAME
from moviegenre.features.store import INDEX, fingerprint, load_index
from moviegenre.features.text import TOKENIZER
from moviegenre.features.tokenizer import Tokenizer, tokens

log = logging.getLogger(__name__)


class Word2VecSettings(Settings):
    vector_size: int = Field(ge=1, le=1024)
    window: int = Field(ge=1, le=50)
    min_count: int = Field(ge=1)
    epochs: int = Field(ge=1, le=1000)
    sg: bool


FEATURE_SET = "word2vec"
VECTORS, SUMMARY = "vectors.npy", "word2vec.json"


def load_plots(prepared_dir: Path) -> pd.DataFrame:
    """Ids and plots of the prepared table: all this stage reads of it (not the genre vocabulary)."""
    path = prepared_dir / TABLE_NAME
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro prepare`)")
    return pd.read_parquet(path, columns=["id", "plot"])


def training_plots(table: pd.DataFrame, text_dir: Path) -> list[str]:
    """The plots of the text index's train rows, in index order (``table`` supplies the plots by id)."""
    index = load_index(text_dir)
    plots = table.set_index(table["id"].astype(str))["plot"]
    ids = index.loc[index["split"] == "train", "id"]
    missing = ids[~ids.isin(plots.index)]
    if len(missing):
        raise MovieGenreError(
            f"{text_dir / INDEX}: {len(missing)} train id(s) not in the prepared table "
            f"(first {missing.iloc[0]!r}); run `dvc repro`"
        )
    if ids.empty:
        raise MovieGenreError(f"{text_dir / INDEX}: no train rows to train word2vec on")
    return plots.loc[ids].fillna("").astype(str).tolist()


def train_vectors(sentences: list[list[str]], settings: Word2VecSettings, seed: int) -> Any:
    """gensim ``KeyedVectors`` trained on ``sentences``; deterministic (one worker, seeded)."""
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(logging.WARNING)  # a line per second of progress otherwise
    started = time.perf_counter()
    model = Word2Vec(
        sentences=sentences,
        vector_size=settings.vector_size,
        window=settings.window,
        min_count=settings.min_count,
        sg=int(settings.sg),
        epochs=settings.epochs,
        seed=seed,
        workers=1,
    )
    log.info("word2vec: %d vectors trained in %.1f s", len(model.wv.key_to_index), time.perf_counter() - started)
    return model.wv


def id_matrix(vectors: Any, tokenizer: Tokenizer, vector_size: int) -> tuple[np.ndarray, int]:
    """float32 (vocab_size, vector_size), row = tokenizer id; and how many words had a vector."""
    matrix = np.zeros((tokenizer.vocab_size, vector_size), dtype=np.float32)
    covered = 0
    for i, word in enumerate(tokenizer.words, start=2):
        if word in vectors.key_to_index:
            matrix[i] = vectors[word]
            covered += 1
    return matrix, covered


def word2vec_features(
    table: pd.DataFrame, text_dir: Path, settings: Word2VecSettings, seed: int, out_dir: Path
) -> dict:
    """Train on the text training plots; write ``vectors.npy`` and ``word2vec.json`` atomically."""
    path = text_dir / TOKENIZER
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro featurize_text`)")
    tokenizer = Tokenizer.load(path)
    sentences = [tokens(plot) for plot in training_plots(table, text_dir)]
    vectors = train_vectors(sentences, settings, seed)
    matrix, covered = id_matrix(vectors, tokenizer, settings.vector_size)
    summary = {
        "plots": len(sentences),
        "words": sum(len(s) for s in sentences),
        "gensim_vocabulary": len(vectors.key_to_index),
        "tokenizer_words": len(tokenizer.words),
        "tokenizer_words_covered": covered,
        "shape": list(matrix.shape),
        "tokenizer": fingerprint(text_dir, [TOKENIZER]),  # the ids the rows follow (checked by load_vectors)
        "settings": to_dict(settings),
        "seed": seed,
        "gensim": metadata.version("gensim"),
    }
    with atomic_dir(out_dir) as tmp:
        np.save(tmp / VECTORS, matrix)
        (tmp / SUMMARY).write_text(json_text(summary))
    log.info(
        "word2vec: %d training plots, %d words; %d of %d tokenizer words have a vector",
        summary["plots"], summary["words"], covered, len(tokenizer.words),
    )  # fmt: skip
    return summary


def load_vectors(directory: Path, text_dir: Path) -> np.ndarray:
    """The id-ordered vectors, refused unless laid out by ``text_dir``'s tokenizer as it is now.

    A tokenizer fitted again (other training movies, another vocab_size) gives its ids to other
    words: rows that followed the old one would start the Embedding from the wrong words.
    """
    path, summary_path = directory / VECTORS, directory / SUMMARY
    for needed in (path, summary_path):
        if not needed.is_file():
            raise MovieGenreError(f"{needed}: not found (run `dvc repro word2vec`)")
    made_for, tokenizer = json.loads(summary_path.read_text()).get("tokenizer"), fingerprint(text_dir, [TOKENIZER])
    if made_for != tokenizer:
        raise MovieGenreError(
            f"{path}: made for the tokenizer fitted as {made_for}, {text_dir / TOKENIZER} is now {tokenizer}; "
            "run `dvc repro word2vec`"
        )
    matrix = np.load(path)
    vocab_size = Tokenizer.load(text_dir / TOKENIZER).vocab_size
    if matrix.ndim != 2 or matrix.shape[0] != vocab_size:
        raise MovieGenreError(
            f"{path}: shape {'x'.join(map(str, matrix.shape))} does not match the tokenizer's {vocab_size} ids; "
            "run `dvc repro word2vec`"
        )
    return matrix.astype(np.float32, copy=False)
