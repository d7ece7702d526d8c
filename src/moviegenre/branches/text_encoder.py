"""The branch on a pretrained sentence encoder (``text_encoder``): a head on frozen plot embeddings.

embed_text turns each plot into one all-MiniLM-L6-v2 vector; this branch only learns the
head, on the text-training movies (train split plus plot-only movies). ``logistic`` is one
L2-regularised logistic regression per genre (scikit-learn, seconds on a CPU); ``mlp`` is a
small Keras network (one hidden layer, dropout) trained with the same loop as the other deep
branches. The default was chosen on val (README "Text encoder").
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from moviegenre.branches.base import Branch, FitContext
from moviegenre.branches.keras_common import TRAINING_SCHEMA, load_keras, predict_batches, save_keras
from moviegenre.config.keys import Schema, choice, integer, number

log = logging.getLogger(__name__)


def head_model(input_dim: int, n_genres: int, settings: dict[str, Any]) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input((input_dim,), name="embedding")
    x = layers.Dense(settings["hidden_units"], activation="relu")(inputs)
    x = layers.Dropout(settings["dropout"])(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model(inputs, outputs, name="text_encoder_mlp")


class TextEncoderHead(Branch):
    """A classifier head on ``data/features/embeddings/embeddings.npy``."""

    name = "text_encoder"
    modality = "plot"
    feature_set = "embeddings"
    needs_runtime = True  # the mlp head trains with Keras
    schema: ClassVar[Schema] = {
        "head": choice("logistic", "mlp"),
        "C": number(1e-4, 1e4),  # logistic: inverse regularisation strength
        "max_iter": integer(10, 100000),  # logistic: solver iterations
        **TRAINING_SCHEMA,  # mlp
        "hidden_units": integer(1, 8192),  # mlp
    }

    def __init__(self, settings: dict[str, Any], seed: int, spec: Any = None) -> None:
        super().__init__(settings, seed, spec)
        self.model: Any = None

    @property
    def model_file(self) -> str:  # type: ignore[override]
        return "model.joblib" if self.settings["head"] == "logistic" else "model.keras"

    def reads(self) -> tuple[str, ...]:
        return ("embeddings",)

    def fit(self, x: Any, labels: np.ndarray, split: np.ndarray, context: FitContext) -> dict[str, Any]:
        x = np.asarray(x, dtype=np.float32)
        if self.settings["head"] == "mlp":
            assert context.train_keras is not None and context.runtime is not None and context.live_dir is not None

            def build(n_genres: int) -> Any:
                return head_model(x.shape[1], n_genres, self.settings)

            self.model, extra = context.train_keras(
                self.name, build, x, labels, split, self.settings, self.seed, context.runtime, context.live_dir
            )
            return extra
        train = np.flatnonzero(split == "train")
        logistic = LogisticRegression(C=self.settings["C"], max_iter=self.settings["max_iter"], random_state=self.seed)
        self.model = OneVsRestClassifier(logistic)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)  # a genre absent from training: predicted 0
            self.model.fit(x[train], labels[train])
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.warning("text_encoder: logistic regression did not converge in %d iterations (raise max_iter)",
                        self.settings["max_iter"])  # fmt: skip
        return {}

    def predict_proba(self, x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.settings["head"] == "mlp":
            return predict_batches(self.model, x)
        return np.clip(np.asarray(self.model.predict_proba(x), dtype=np.float64), 0.0, 1.0)

    def save_model(self, directory: Path) -> None:
        if self.settings["head"] == "mlp":
            save_keras(self.model, directory / self.model_file)
        else:
            joblib.dump(self.model, directory / self.model_file, compress=3)

    def load_model(self, directory: Path) -> None:
        path = directory / self.model_file
        self.model = load_keras(path) if self.settings["head"] == "mlp" else joblib.load(path)
