"""Train a Keras branch: tf.data input, early stopping on val macro AUC, dvclive, outputs.

Inputs stay compact until a batch needs them: posters as uint8 (rescaled inside the model),
token ids as int32, counts as a sparse tensor made dense one batch at a time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf

from dvclive import Live
from moviegenre.branches import MODELS_DIR, SCORED_SPLITS, labels_for, write_outputs
from moviegenre.dataset import load_prepared

log = logging.getLogger(__name__)

LIVE_DIR = Path("dvclive")


def make_dataset(
    features, labels: np.ndarray | None, rows: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Batches of ``features[rows]`` (and labels), shuffled each epoch when a seed is given.

    Sparse features are term counts: they are scaled by log1p here, which keeps a long plot's
    repeated words from swamping the first layer, and since ``predict`` reuses this function
    training and prediction cannot disagree on the scaling.
    """
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
        data = data.map(densify, num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


class LiveLogger(keras.callbacks.Callback):
    """Per-epoch train and val loss and AUC to dvclive (plots and metrics for DVC)."""

    def __init__(self, live: Live) -> None:
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            if name == "learning_rate":
                continue
            split, metric = ("val", name[4:]) if name.startswith("val_") else ("train", name)
            self.live.log_metric(f"{split}/{metric}", float(value))
        self.live.next_step()


def run_deep_branch(
    branch: str,
    build: Callable[[int], keras.Model],
    features,
    index: pd.DataFrame,
    settings: dict,
    seed: int,
    strategy: tf.distribute.Strategy,
    device: str,
) -> dict:
    """Fit ``build(n_genres)`` on train rows, stop on val AUC, write model, probabilities, metrics."""
    table, genres = load_prepared()
    labels = labels_for(index, table, genres).astype(np.float32)
    split = index["split"].to_numpy()
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    scored = np.flatnonzero(np.isin(split, SCORED_SPLITS))
    batch = settings["batch_size"] * strategy.num_replicas_in_sync

    train_data = make_dataset(features, labels, train, batch, shuffle_seed=seed)
    val_data = make_dataset(features, labels, val, batch)
    with strategy.scope():
        model = build(len(genres))
        model.compile(
            optimizer=keras.optimizers.AdamW(settings["learning_rate"], weight_decay=settings["weight_decay"]),
            loss="binary_crossentropy",
            metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(genres), name="auc")],
        )
    log.info(
        "%s: %s, %d parameters, %d train / %d val movies on %s",
        branch,
        model.name,
        model.count_params(),
        len(train),
        len(val),
        device,
    )

    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=settings["patience"], restore_best_weights=True
        )
    ]
    if settings["lr_patience"]:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_auc", mode="max", factor=0.5, patience=settings["lr_patience"], min_lr=1e-5
            )
        )
    with Live(str(LIVE_DIR / branch), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        live.log_params({k: v for k, v in settings.items() if isinstance(v, int | float | str | bool)})
        started = time.perf_counter()
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=settings["epochs"],
            shuffle=False,  # tf.data already shuffles, with the seed
            callbacks=[*callbacks, LiveLogger(live)],
            verbose=2,
        )
        fit_s = time.perf_counter() - started
    epochs_run = len(history.history["loss"])

    started = time.perf_counter()
    proba = model.predict(make_dataset(features, None, scored, batch), verbose=0).astype(np.float64)
    predict_s = time.perf_counter() - started
    _save_model(model, MODELS_DIR / f"{branch}.keras")
    metrics = write_outputs(
        branch,
        index,
        np.clip(proba, 0.0, 1.0),
        labels.astype(np.uint8),
        genres,
        fit_s,
        predict_s,
        extra={
            "epochs": {"run": epochs_run, "best": int(np.argmax(history.history["val_auc"])) + 1},
            "throughput": {"train_per_s": round(epochs_run * len(train) / fit_s, 1)},
        },
    )
    return metrics


def _save_model(model: keras.Model, target: Path) -> None:
    """Keras insists on a .keras suffix, so the temporary file keeps one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def train_image_branch(settings: dict, seed: int, strategy: tf.distribute.Strategy, device: str) -> dict:
    """The CNN on featurize_images' arrays: RGB for ``channels: 3``, greyscale for 1."""
    from moviegenre.deep_models import image_model
    from moviegenre.feature_index import load_index
    from moviegenre.image_features import GREY, IMAGES_DIR, RGB, load_array

    index = load_index(IMAGES_DIR)
    pixels = load_array(IMAGES_DIR, RGB) if settings["channels"] == 3 else load_array(IMAGES_DIR, GREY)[..., None]
    _, height, width, channels = pixels.shape

    def build(n_genres: int) -> keras.Model:
        return image_model(settings["arch"], height, width, channels, n_genres, settings, seed)

    return run_deep_branch("image_dl", build, pixels, index, settings, seed, strategy, device)


def train_text_branch(settings: dict, seed: int, strategy: tf.distribute.Strategy, device: str) -> dict:
    """The dense NN on term counts (``mlp``) or the LSTM on token ids (``lstm``)."""
    from moviegenre.deep_models import text_model
    from moviegenre.feature_index import load_index
    from moviegenre.text_features import COUNTS, SEQUENCES, TEXT_DIR, TOKENIZER, load_matrix
    from moviegenre.tokenizer import Tokenizer

    index = load_index(TEXT_DIR)
    if settings["arch"] == "mlp":
        features = load_matrix(TEXT_DIR, COUNTS)
        input_dim, length = features.shape[1], None
    else:
        features = np.load(TEXT_DIR / SEQUENCES, mmap_mode="r")
        input_dim, length = Tokenizer.load(TEXT_DIR / TOKENIZER).vocab_size, features.shape[1]

    def build(n_genres: int) -> keras.Model:
        return text_model(settings["arch"], input_dim, n_genres, settings, length)

    return run_deep_branch("text_dl", build, features, index, settings, seed, strategy, device)
