"""Train a Keras branch: tf.data input, early stopping on val macro AUC, dvclive curves.

Only the training stages import this module (prediction uses ``keras_common``): it brings
dvclive, which ``moviegenre predict`` must not pay for.

dvclive records, per epoch, train and val loss and AUC and the learning rate (halved on
plateaus); its summary (``dvclive/<branch>/metrics.json``) is the restored best epoch's, the
one the saved model has, not the last epoch's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dvclive import Live
from moviegenre.branches import runtime
from moviegenre.branches.keras_common import make_dataset

log = logging.getLogger(__name__)


class LiveLogger(keras.callbacks.Callback):
    """Per-epoch train and val loss and AUC, and the learning rate, to dvclive (no timestamps)."""

    def __init__(self, live: Live) -> None:
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        rate = logs.pop("learning_rate", None)
        if rate is None and self.model is not None:
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for name, value in logs.items():
            split, metric = ("val", name[4:]) if name.startswith("val_") else ("train", name)
            self.live.log_metric(f"{split}/{metric}", round(float(value), 6))
        self.live.log_metric("learning_rate", round(float(rate), 8))
        self.live.next_step()


def fit_keras(
    name: str,
    build: Callable[[int], Any],
    x: Any,
    labels: np.ndarray,
    split: np.ndarray,
    settings: dict[str, Any],
    seed: int,
    runtime_settings: dict[str, Any],
    live_dir: Path,
) -> tuple[Any, dict[str, Any]]:
    """Fit ``build(n_genres)`` on train rows, stop on val AUC; return the best model and extra metrics.

    ``runtime_settings`` (device, threads, precision, determinism) are applied first:
    TensorFlow fixes them on first use.
    """
    strategy, device = runtime.configure(runtime_settings, seed)
    labels = labels.astype(np.float32)
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    n_genres = labels.shape[1]
    batch = settings["batch_size"] * strategy.num_replicas_in_sync
    train_data = make_dataset(x, labels, train, batch, shuffle_seed=seed)
    val_data = make_dataset(x, labels, val, batch)
    keras.backend.clear_session()  # layer names restart from 1: the same model gives the same file
    with strategy.scope():
        model = build(n_genres)
        model.compile(
            optimizer=keras.optimizers.AdamW(settings["learning_rate"], weight_decay=settings["weight_decay"]),
            loss="binary_crossentropy",
            metrics=[keras.metrics.AUC(multi_label=True, num_labels=n_genres, name="auc")],
        )
    log.info(
        "%s: %s, %d parameters, %d train / %d val movies on %s",
        name, model.name, model.count_params(), len(train), len(val), device,
    )  # fmt: skip
    callbacks: list[keras.callbacks.Callback] = [
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
    with Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
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
        best = int(np.argmax(history.history["val_auc"]))
        summary: dict[str, Any] = {"step": best, "train": {}, "val": {}}
        for key, values in history.history.items():
            if key != "learning_rate":
                split, metric = ("val", key[4:]) if key.startswith("val_") else ("train", key)
                summary[split][metric] = round(float(values[best]), 6)
        live.summary = summary
    epochs_run = len(history.history["loss"])
    extra = {
        "epochs": {"run": epochs_run, "best": best + 1},
        "throughput": {"train_per_s": round(epochs_run * len(train) / fit_s, 1)},
    }
    return model, extra
