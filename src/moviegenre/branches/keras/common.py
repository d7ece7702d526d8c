"""What the Keras branches share for training and prediction alike: inputs, prediction, files.

Prediction imports this module, never the training loop (which pulls in dvclive), so the
input pipeline here is the one both use: posters stay uint8 (rescaled inside the model),
token ids int32, counts sparse until a batch needs them, then log1p-scaled and dense.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from moviegenre.branches.base import InputParts

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def make_dataset(
    features: Any, labels: np.ndarray | None, rows: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> Any:
    """Batches of ``features[rows]`` (and labels), shuffled each epoch when a seed is given.

    Sparse features are term counts: they are scaled by log1p here, which keeps a long plot's
    repeated words from swamping the first layer, and since prediction uses this function
    too, training and prediction cannot disagree on the scaling. ``InputParts`` (a model with
    several inputs) gives batches of dicts keyed by the parts' names, each part as above.

    The dataset holds row positions, not rows: each batch gathers its rows from ``features``
    when it is needed (``batch_arrays``), so a memory-mapped feature file is read batch by
    batch and never copied whole into memory or into the graph. Positions are shuffled by
    ``tf.data``'s own shuffle with the seed that used to shuffle the rows themselves, whose
    order does not depend on what it shuffles: the batches hold the same rows in the same
    order as when the rows were sliced into the dataset, and training gives the same weights.
    """
    import tensorflow as tf

    rows = np.asarray(rows, dtype=np.int64)
    names = list(features.parts) if isinstance(features, InputParts) else []

    def gather(positions: np.ndarray) -> list[np.ndarray]:
        chosen = rows[positions]
        batch = batch_arrays(features, chosen)
        out = [batch[name] for name in names] if names else [batch]
        return out if labels is None else [*out, np.asarray(labels[chosen])]

    sample = gather(np.zeros(0, dtype=np.int64))  # dtypes and row shapes, from an empty batch
    dtypes = [tf.as_dtype(array.dtype) for array in sample]
    shapes = [(None, *array.shape[1:]) for array in sample]

    def load(positions: Any) -> Any:
        tensors = tf.numpy_function(gather, [positions], dtypes, stateful=False)
        for tensor, shape in zip(tensors, shapes, strict=True):
            tensor.set_shape(shape)
        x = dict(zip(names, tensors[: len(names)], strict=True)) if names else tensors[0]
        return x if labels is None else (x, tensors[-1])

    positions = tf.data.Dataset.range(len(rows))
    if shuffle_seed is not None:
        positions = positions.shuffle(len(rows), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = positions.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.prefetch(tf.data.AUTOTUNE)


def batch_arrays(features: Any, rows: np.ndarray) -> Any:
    """``features[rows]`` as the one batch ``make_dataset`` would give: numpy, sparse counts
    log1p-scaled and dense, ``InputParts`` as a dict by part name."""
    if isinstance(features, InputParts):
        return {name: batch_arrays(part, rows) for name, part in features.parts.items()}
    if not sp.issparse(features):
        return np.asarray(features[rows])
    block = sp.csr_matrix(features[rows])
    scaled = sp.csr_matrix((np.log1p(block.data).astype(np.float32), block.indices, block.indptr), shape=block.shape)
    return scaled.toarray()


def predict_batches(model: Any, features: Any, batch_size: int = 256) -> np.ndarray:
    """Probabilities for every row of ``features``, clipped to [0, 1] (float16 can overshoot).

    Rows that fit in one batch (one movie, a request to the server) go through one direct call
    of the model: ``model.predict`` builds a tf.data pipeline and traces its predict function
    on every call, which costs more than the network itself for a few rows. Both run the same
    float32 kernels, so their probabilities agree to float noise (the end-to-end tests hold
    them to the stage's).
    """
    rows = np.arange(features.shape[0])
    if len(rows) <= batch_size:
        proba = model(batch_arrays(features, rows), training=False)
    else:
        proba = model.predict(make_dataset(features, None, rows, batch_size), verbose=0)
    return np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)


def save_keras(model: Any, target: Path) -> None:
    """``model.save`` with the archive made byte-reproducible.

    Keras stamps ``date_saved`` into metadata.json, the write time into the zip entry of the
    weights and memory addresses into config.json (``shared_object_id``); all are fixed here
    so that the same weights give the same file. Entries are stored, not deflated: inflating
    a large model's weights would cost every prediction's load more than the bigger file does.
    """
    scratch = target.with_name(f".{target.stem}.scratch.keras")
    try:
        model.save(scratch)
        with zipfile.ZipFile(scratch) as source:
            entries = [(info.filename, source.read(info)) for info in source.infolist()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as out:
            for name, data in sorted(entries):
                if name == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata, sort_keys=True).encode()
                elif name == "config.json":
                    data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
                info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_STORED
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
    import keras

    return keras.models.load_model(path, compile=False)
