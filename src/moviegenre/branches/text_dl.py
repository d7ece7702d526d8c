"""The neural branch on plots (``text_dl``): a dense NN on term counts, or a network on token ids.

``mlp`` reads ``text.counts``; ``lstm``, ``conv1d`` (Conv1D + global max pooling) and
``cnn_lstm`` (Conv1D, max pooling, then an LSTM) read ``text.sequences``. Their Embedding
starts random (``embedding: learned``) or from the word2vec stage's vectors (``word2vec``),
fine-tuned or frozen (``embedding_trainable``). The vectors are read at fit time only: the
saved model holds its Embedding, so prediction is the same whatever the embedding.

Padding (id 0) never counts: neither its embedding row nor how much of it follows a plot
changes a score. The LSTM skips it (Keras mask); the conv architectures, whose layers drop
Keras masks, zero the padded positions before the convolution (as its own zero padding) and
after it (ReLU outputs, so a zero never wins a max over real words), and hand their LSTM a
mask pooled like its input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np
from pydantic import Field

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.settings import TrainingSettings
from moviegenre.core.errors import MovieGenreError
from moviegenre.features import word2vec
from moviegenre.features.text import TOKENIZER
from moviegenre.features.tokenizer import PAD, Tokenizer

Architecture = Literal["mlp", "lstm", "conv1d", "cnn_lstm"]
Embedding = Literal["learned", "word2vec"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
EMBEDDINGS: tuple[str, ...] = get_args(Embedding)


def _padding_mask(inputs: Any) -> Any:
    """float32 (batch, steps, 1): 1 where a real token is, 0 on padding."""
    from keras import ops

    return ops.expand_dims(ops.cast(ops.not_equal(inputs, PAD), "float32"), -1)


def _max_pool(x: Any, pool_size: int, length: int) -> Any:
    """Max over windows of ``pool_size`` steps from the first, the last one completed with zeros.

    Keras' ``padding="same"`` would centre the windows, so how much padding follows a plot
    would move them; ``valid`` alone would drop the last words of a plot that fills ``length``.
    """
    from keras import layers

    extra = -length % pool_size
    if extra:
        x = layers.ZeroPadding1D((0, extra))(x)
    return layers.MaxPooling1D(pool_size)(x)


def text_model(
    arch: str,
    input_dim: int,
    n_genres: int,
    settings: TextNetSettings,
    length: int | None = None,
    vectors: np.ndarray | None = None,
) -> Any:
    """The uncompiled network; ``vectors`` (input_dim x embedding_dim) start the Embedding when given."""
    import keras
    from keras import layers, ops

    dropout = settings.dropout
    if arch == "mlp":
        inputs = keras.Input((input_dim,), name="counts")
        x = layers.Dense(settings.hidden_units, activation="relu")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout)(x)
    else:
        inputs = keras.Input((length,), dtype="int32", name="tokens")
        x = layers.Embedding(
            input_dim,
            settings.embedding_dim,
            mask_zero=arch == "lstm",  # conv layers drop Keras masks (with a warning): masked by hand below
            weights=None if vectors is None else [vectors],
            trainable=settings.embedding_trainable,
        )(inputs)
        if arch == "lstm":
            # Default activations and no recurrent dropout keep the layer cuDNN-eligible on a GPU.
            x = layers.LSTM(settings.lstm_units)(x)
        else:
            real = _padding_mask(inputs)
            x = ops.multiply(x, ops.cast(real, x.dtype))  # padded words read as the conv's own zero padding
            x = layers.Conv1D(settings.conv_filters, settings.kernel_size, padding="same", activation="relu")(x)
            x = ops.multiply(x, ops.cast(real, x.dtype))
            if arch == "conv1d":
                x = layers.GlobalMaxPooling1D()(x)
            else:
                pool = settings.pool_size
                if pool > 1 and length is not None:
                    x, real = _max_pool(x, pool, length), _max_pool(real, pool, length)
                x = layers.LSTM(settings.lstm_units)(x, mask=ops.greater(ops.squeeze(real, -1), 0))
        x = layers.Dense(settings.hidden_units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, outputs, name=f"text_{arch}")


class TextNetSettings(TrainingSettings):
    arch: Architecture
    hidden_units: int = Field(ge=1, le=8192)
    embedding: Embedding
    embedding_trainable: bool
    embedding_dim: int = Field(ge=1, le=1024)
    lstm_units: int = Field(ge=1, le=4096)
    conv_filters: int = Field(ge=1, le=4096)
    kernel_size: int = Field(ge=1, le=64)
    pool_size: int = Field(ge=1, le=64)


class TextNet(KerasBranch[TextNetSettings]):
    """``mlp``: the seed's dense NN on text.counts; ``lstm``, ``conv1d``, ``cnn_lstm``: on text.sequences."""

    name = "text_dl"
    modality = "plot"
    feature_set = "text"
    Settings = TextNetSettings

    def reads(self) -> tuple[str, ...]:
        return ("counts",) if self.settings.arch == "mlp" else ("sequences",)

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        arch = self.settings.arch
        embedding = self.settings.embedding
        if arch == "mlp":
            if embedding != "learned":
                raise MovieGenreError(
                    f"text_dl.embedding is {embedding!r} but text_dl.arch mlp reads term counts, not token ids: "
                    "use arch lstm, conv1d or cnn_lstm, or embedding learned"
                )
            return lambda n_genres: text_model(arch, x.shape[1], n_genres, self.settings)
        assert context.feature_dir is not None
        input_dim = Tokenizer.load(context.feature_dir / TOKENIZER).vocab_size  # one row per id it can give
        vectors = self._vectors(context) if embedding == "word2vec" else None
        return lambda n_genres: text_model(arch, input_dim, n_genres, self.settings, x.shape[1], vectors)

    def _vectors(self, context: FitContext) -> np.ndarray:
        """The word2vec stage's vectors, a sibling of the text features; their width must be embedding_dim."""
        assert context.feature_dir is not None
        directory = context.feature_dir.parent / word2vec.FEATURE_SET
        vectors = word2vec.load_vectors(directory, context.feature_dir)
        if vectors.shape[1] != self.settings.embedding_dim:
            raise MovieGenreError(
                f"text_dl.embedding_dim is {self.settings.embedding_dim} but word2vec.vector_size is "
                f"{vectors.shape[1]} ({directory / word2vec.VECTORS}): set them equal"
            )
        return vectors
