"""What the Keras branches share for training and prediction alike: settings, inputs, files.

Prediction imports this module, never the training loop (which pulls in dvclive), so the
input pipeline here is the one both use: posters stay uint8 (rescaled inside the model),
token ids int32, counts sparse until a batch needs them, then log1p-scaled and dense.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from moviegenre.branches.base import Branch, FitContext
from moviegenre.config.keys import Schema, integer, number

TRAINING_SCHEMA: Schema = {
    "epochs": integer(1, 1000),
    "batch_size": integer(1, 4096),
    "learning_rate": number(1e-6, 1.0),
    "weight_decay": number(0.0, 1.0),
    "lr_patience": integer(0, 1000),
    "dropout": number(0.0, 0.95),
    "patience": integer(1, 1000),
}

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_dataset(
    features: Any, labels: np.ndarray | None, rows: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> Any:
    """Batches of ``features[rows]`` (and labels), shuffled each epoch when a seed is given.

    Sparse features are term counts: they are scaled by log1p here, which keeps a long plot's
    repeated words from swamping the first layer, and since prediction uses this function
    too, training and prediction cannot disagree on the scaling.
    """
    quiet_tensorflow()
    import tensorflow as tf

    if sp.issparse(features):
        block = features[rows].tocoo()
        x = tf.data.Dataset.from_tensor_slices(
            tf.sparse.reorder(
                tf.SparseTensor(
                    np.stack([block.row, block.col], axis=1).astype(np.int64),
                    np.log1p(block.data).astype(np.float32),
                    block.shape,
                )
            )
        )
    else:
        x = tf.data.Dataset.from_tensor_slices(np.asarray(features[rows]))
    data = x if labels is None else tf.data.Dataset.zip((x, tf.data.Dataset.from_tensor_slices(labels[rows])))
    if shuffle_seed is not None:
        data = data.shuffle(len(rows), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if sp.issparse(features):
        densify = (lambda x, y: (tf.sparse.to_dense(x), y)) if labels is not None else tf.sparse.to_dense
        data = data.map(densify, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.prefetch(tf.data.AUTOTUNE)


def predict_batches(model: Any, features: Any, batch_size: int = 256) -> np.ndarray:
    """Probabilities for every row of ``features``, clipped to [0, 1] (float16 can overshoot)."""
    rows = np.arange(features.shape[0])
    proba = model.predict(make_dataset(features, None, rows, batch_size), verbose=0)
    return np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)


def save_keras(model: Any, target: Path) -> None:
    """``model.save`` with the archive made byte-reproducible.

    Keras stamps ``date_saved`` into metadata.json, the write time into the zip entry of the
    weights and memory addresses into config.json (``shared_object_id``); all are fixed here
    so that the same weights give the same file.
    """
    scratch = target.with_name(f".{target.stem}.scratch.keras")
    try:
        model.save(scratch)
        with zipfile.ZipFile(scratch) as source:
            entries = [(info.filename, source.read(info)) for info in source.infolist()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for name, data in sorted(entries):
                if name == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata, sort_keys=True).encode()
                elif name == "config.json":
                    data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                out.writestr(info, data)
        target.write_bytes(buffer.getvalue())
    finally:
        scratch.unlink(missing_ok=True)


def _renumber_shared_objects(config: Any, numbers: dict[int, int] | None = None) -> Any:
    """Keras names objects shared inside a model by their memory address; number them in order instead."""
    numbers = {} if numbers is None else numbers
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "shared_object_id" and isinstance(value, int):
                out[key] = numbers.setdefault(value, len(numbers) + 1)
            else:
                out[key] = _renumber_shared_objects(value, numbers)
        return out
    if isinstance(config, list):
        return [_renumber_shared_objects(item, numbers) for item in config]
    return config


def load_keras(path: Path) -> Any:
    quiet_tensorflow()
    import keras

    return keras.models.load_model(path, compile=False)


class KerasBranch(Branch):
    """A branch whose model is one Keras network: subclasses say only how to build it.

    Fitting goes through the loop the train stage hands in (``context.train_keras``);
    prediction, saving and loading are the same for every Keras branch.
    """

    model_file = "model.keras"
    needs_runtime = True

    def __init__(self, settings: dict[str, Any], seed: int, spec: Any = None) -> None:
        super().__init__(settings, seed, spec)
        self.model: Any = None

    @abstractmethod
    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        """A function from the number of genres to an uncompiled model for inputs like ``x``."""

    def fit(self, x: Any, labels: np.ndarray, split: np.ndarray, context: FitContext) -> dict[str, Any]:
        assert context.train_keras is not None and context.runtime is not None and context.live_dir is not None
        self.model, extra = context.train_keras(
            self.name, self.builder(x, context), x, labels, split, self.settings, self.seed, context.runtime,
            context.live_dir,
        )  # fmt: skip
        return extra

    def predict_proba(self, x: Any) -> np.ndarray:
        return predict_batches(self.model, x)

    def save_model(self, directory: Path) -> None:
        save_keras(self.model, directory / self.model_file)

    def load_model(self, directory: Path) -> None:
        self.model = load_keras(directory / self.model_file)
