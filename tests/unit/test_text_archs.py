"""text_dl's conv architectures and word2vec embedding, on tiny generated plots."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import PROJECT_ROOT
from helpers.builders import CPU, PATHS, TEXT, TEXT_DL, check_keras_outputs

from moviegenre.branches.base import FitContext
from moviegenre.branches.text_dl import TextNet, text_model
from moviegenre.branches.training import train_branch
from moviegenre.core.errors import MovieGenreError
from moviegenre.data.table import load_prepared
from moviegenre.features.store import load_array, load_index
from moviegenre.features.text import TOKENIZER, featurize_text
from moviegenre.features.tokenizer import Tokenizer

WORD2VEC = {"vector_size": 8, "window": 3, "min_count": 1, "epochs": 3, "sg": True}
CONV = {"conv_filters": 8, "kernel_size": 3, "pool_size": 2, "embedding": "learned", "embedding_trainable": True}
UNSEEN = "zorblax"  # planted in val and test plots only


@pytest.fixture
def text_features(prepared_project: Path) -> Path:
    """The tiny project with its text features (the word2vec stage's inputs) and a params.yaml."""
    table, _ = load_prepared(PATHS.prepared)
    featurize_text(table, TEXT, out_dir=PATHS.features("text"))
    Path("params.yaml").write_text(yaml.safe_dump({"seed": 3, "word2vec": WORD2VEC}))
    return prepared_project


def _run_word2vec_stage() -> None:
    runpy.run_path(str(PROJECT_ROOT / "stages" / "word2vec.py"))["main"]()


def _vectors() -> np.ndarray:
    return np.load(PATHS.features("word2vec") / "vectors.npy")


def test_word2vec_stage_lays_vectors_out_by_token_id_and_repeats_itself(text_features: Path) -> None:
    _run_word2vec_stage()
    out = PATHS.features("word2vec")
    first = {name: (out / name).read_bytes() for name in ("vectors.npy", "word2vec.json")}
    tokenizer = Tokenizer.load(PATHS.features("text") / TOKENIZER)
    vectors = _vectors()
    assert vectors.dtype == np.float32 and vectors.shape == (tokenizer.vocab_size, WORD2VEC["vector_size"])
    assert not vectors[:2].any()  # padding and "any other word"
    n_words = len(tokenizer.words)
    assert np.abs(vectors[2 : 2 + n_words]).sum(axis=1).min() > 0  # min_count 1: every training word
    assert not vectors[2 + n_words :].any()  # ids no word was given
    summary = json.loads(first["word2vec.json"])
    index = load_index(PATHS.features("text"))
    assert summary["plots"] == int((index["split"] == "train").sum())
    assert summary["tokenizer_words_covered"] == n_words and summary["shape"] == list(vectors.shape)
    _run_word2vec_stage()
    assert {name: (out / name).read_bytes() for name in first} == first


def test_word2vec_learns_from_training_plots_only(text_features: Path) -> None:
    """A word of val and test plots alone gets no vector, even when the tokenizer knows it."""
    index = load_index(PATHS.features("text"))
    held_out = set(index.loc[index["split"] != "train", "id"])
    table = pd.read_parquet(PATHS.prepared / "movies.parquet")
    table.loc[table["id"].isin(held_out), "plot"] += f" {UNSEEN} {UNSEEN} story"
    table.to_parquet(PATHS.prepared / "movies.parquet", index=False)
    tokenizer = Tokenizer.load(PATHS.features("text") / TOKENIZER)
    Tokenizer(tokenizer.vocab_size, tokenizer.length, [*tokenizer.words, UNSEEN]).save(
        PATHS.features("text") / TOKENIZER
    )
    _run_word2vec_stage()
    vectors = _vectors()
    assert not vectors[2 + len(tokenizer.words)].any()
    assert vectors[2 + tokenizer.words.index("story")].any()


def _builder_context() -> tuple[np.ndarray, FitContext, int]:
    _, genres = load_prepared(PATHS.prepared)
    return load_array(PATHS.features("text"), "sequences"), FitContext(genres, CPU, PATHS.features("text")), len(genres)


@pytest.mark.parametrize("arch", ["lstm", "conv1d", "cnn_lstm"])
def test_word2vec_embedding_starts_from_the_vectors(text_features: Path, arch: str) -> None:
    import keras

    _run_word2vec_stage()
    x, context, n_genres = _builder_context()
    settings = TEXT_DL | CONV | {"arch": arch, "embedding": "word2vec", "embedding_trainable": False,
                                 "embedding_dim": WORD2VEC["vector_size"]}  # fmt: skip
    model = TextNet(settings, 0).builder(x, context)(n_genres)
    (embedding,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    np.testing.assert_array_equal(embedding.get_weights()[0], _vectors())
    assert not embedding.trainable


def test_word2vec_embedding_refuses_a_mismatch_mlp_missing_and_stale_vectors(text_features: Path) -> None:
    x, context, _ = _builder_context()
    word2vec = TEXT_DL | CONV | {"arch": "conv1d", "embedding": "word2vec", "embedding_dim": 4}
    with pytest.raises(MovieGenreError, match=r"vectors\.npy: not found \(run `dvc repro word2vec`\)"):
        TextNet(word2vec, 0).builder(x, context)
    _run_word2vec_stage()
    with pytest.raises(MovieGenreError, match=r"text_dl\.embedding_dim is 4 but word2vec\.vector_size is 8"):
        TextNet(word2vec, 0).builder(x, context)
    counts = load_array(PATHS.features("text"), "counts")
    with pytest.raises(MovieGenreError, match=r"text_dl\.arch mlp reads term counts"):
        TextNet(word2vec | {"arch": "mlp"}, 0).builder(counts, context)
    tokenizer = Tokenizer.load(PATHS.features("text") / TOKENIZER)  # fitted again: its ids go to other words
    Tokenizer(tokenizer.vocab_size, tokenizer.length, tokenizer.words[::-1]).save(PATHS.features("text") / TOKENIZER)
    with pytest.raises(MovieGenreError, match=r"vectors\.npy: made for the tokenizer fitted as \w+, .* is now \w+"):
        TextNet(word2vec | {"embedding_dim": 8}, 0).builder(x, context)


@pytest.mark.parametrize(
    ("arch", "embedding"), [("conv1d", "learned"), ("cnn_lstm", "learned"), ("cnn_lstm", "word2vec")]
)
def test_conv_architectures_train_write_outputs_and_reload(text_features: Path, arch: str, embedding: str) -> None:
    if embedding == "word2vec":
        _run_word2vec_stage()
    settings = TEXT_DL | CONV | {"arch": arch, "embedding": embedding, "embedding_dim": WORD2VEC["vector_size"]}
    metrics = train_branch(TextNet(settings, 0), PATHS, CPU)
    check_keras_outputs("text_dl", metrics)  # probabilities in [0, 1]; the reloaded model predicts the same
    assert json.loads(Path("models/text_dl/spec.json").read_text())["settings"]["arch"] == arch


@pytest.mark.parametrize("arch", ["lstm", "conv1d", "cnn_lstm"])
def test_padding_never_counts(arch: str) -> None:
    """Neither the padding id's embedding row nor more padding after a plot changes its score."""
    settings = TEXT_DL | CONV | {"arch": arch, "pool_size": 3}
    tokens = np.array([[5, 9, 2, 7, 3, 0, 0, 0, 0, 0], [4, 4, 8, 6, 2, 9, 3, 5, 7, 1]], dtype=np.int32)
    typed = TextNet(settings, 0).settings
    model = text_model(arch, 12, 3, typed, tokens.shape[1])
    before = model.predict(tokens, verbose=0)
    weights = model.get_weights()
    weights[0][0] = 100.0  # the Embedding's row for the padding id
    longer = text_model(arch, 12, 3, typed, tokens.shape[1] + 7)
    longer.set_weights(weights)
    after = longer.predict(np.pad(tokens, ((0, 0), (0, 7))), verbose=0)
    np.testing.assert_allclose(after, before, atol=1e-6)
