"""The neural branch on plots (``text_dl``): a dense NN on term counts, or an LSTM on token ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras_common import TRAINING_SCHEMA, KerasBranch
from moviegenre.config.keys import Schema, choice, integer
from moviegenre.features.text import TOKENIZER
from moviegenre.features.tokenizer import Tokenizer


def text_model(arch: str, input_dim: int, n_genres: int, settings: dict, length: int | None = None) -> Any:
    import keras
    from keras import layers

    dropout = settings["dropout"]
    if arch == "mlp":
        inputs = keras.Input((input_dim,), name="counts")
        x = layers.Dense(settings["hidden_units"], activation="relu")(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout)(x)
    else:
        inputs = keras.Input((length,), dtype="int32", name="tokens")
        x = layers.Embedding(input_dim, settings["embedding_dim"], mask_zero=True)(inputs)
        # Default activations and no recurrent dropout keep the layer cuDNN-eligible on a GPU.
        x = layers.LSTM(settings["lstm_units"])(x)
        x = layers.Dense(settings["hidden_units"], activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, outputs, name=f"text_{arch}")


class TextNet(KerasBranch):
    """``mlp``: the seed's dense NN on text.counts; ``lstm``: Embedding + LSTM on text.sequences."""

    name = "text_dl"
    modality = "plot"
    feature_set = "text"
    schema: ClassVar[Schema] = {
        "arch": choice("mlp", "lstm"),
        **TRAINING_SCHEMA,
        "hidden_units": integer(1, 8192),
        "embedding_dim": integer(1, 1024),
        "lstm_units": integer(1, 4096),
    }

    def reads(self) -> tuple[str, ...]:
        return ("counts",) if self.settings["arch"] == "mlp" else ("sequences",)

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        arch = self.settings["arch"]
        if arch == "mlp":
            input_dim = x.shape[1]
        else:  # one embedding row per id the tokenizer can give
            assert context.feature_dir is not None
            input_dim = Tokenizer.load(context.feature_dir / TOKENIZER).vocab_size
        length = None if arch == "mlp" else x.shape[1]
        return lambda n_genres: text_model(arch, input_dim, n_genres, self.settings, length)
