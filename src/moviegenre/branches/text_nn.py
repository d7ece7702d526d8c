"""The neural branch on plots (``text_dl``): a dense NN on term counts, or an LSTM on token ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from moviegenre.branches.base import Branch, FitContext
from moviegenre.branches.keras_common import TRAINING_SCHEMA, load_keras, predict_batches, save_keras
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


class TextNet(Branch):
    """``mlp``: the seed's dense NN on text.counts; ``lstm``: Embedding + LSTM on text.sequences."""

    name = "text_dl"
    modality = "plot"
    feature_set = "text"
    model_file = "model.keras"
    needs_runtime = True
    schema: ClassVar[Schema] = {
        "arch": choice("mlp", "lstm"),
        **TRAINING_SCHEMA,
        "hidden_units": integer(1, 8192),
        "embedding_dim": integer(1, 1024),
        "lstm_units": integer(1, 4096),
    }

    def __init__(self, settings: dict[str, Any], seed: int, spec: Any = None) -> None:
        super().__init__(settings, seed, spec)
        self.model: Any = None

    def reads(self) -> tuple[str, ...]:
        return ("counts",) if self.settings["arch"] == "mlp" else ("sequences",)

    def fit(self, x: Any, labels: np.ndarray, split: np.ndarray, context: FitContext) -> dict[str, Any]:
        assert context.train_keras is not None and context.runtime is not None and context.live_dir is not None
        arch = self.settings["arch"]
        if arch == "mlp":
            input_dim = x.shape[1]
        else:  # one embedding row per id the tokenizer can give
            assert context.feature_dir is not None
            input_dim = Tokenizer.load(context.feature_dir / TOKENIZER).vocab_size
        length = None if arch == "mlp" else x.shape[1]

        def build(n_genres: int) -> Any:
            return text_model(arch, input_dim, n_genres, self.settings, length)

        self.model, extra = context.train_keras(
            self.name, build, x, labels, split, self.settings, self.seed, context.runtime, context.live_dir
        )
        return extra

    def predict_proba(self, x: Any) -> np.ndarray:
        return predict_batches(self.model, x)

    def save_model(self, directory: Path) -> None:
        save_keras(self.model, directory / self.model_file)

    def load_model(self, directory: Path) -> None:
        self.model = load_keras(directory / self.model_file)
