"""Train a Keras branch: tf.data input, early stopping on val macro AUC, dvclive curves.

``KerasBranch.fit`` imports this module when a fit starts; prediction never does (it would
pay for dvclive and the callbacks). It needs nothing of the branch module but the settings it
trains by (``settings.py``), so the two do not import each other.

dvclive records, per epoch, train and val loss and AUC and the learning rate (halved on
plateaus); its summary (``dvclive/<branch>/metrics.json``) is the restored best epoch's, the
one the saved model has, not the last epoch's. A pretrained backbone fine-tuned after a frozen
warm-up (``FineTune``) is one run of epochs in both: the steps count on from one phase to the next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from dvclive import Live

from moviegenre.branches.base import Rows
from moviegenre.branches.keras.common import make_dataset
from moviegenre.branches.keras.settings import FineTune, TrainingSettings
from moviegenre.config.runtime import RuntimeSettings
from moviegenre.core.runtime import tensorflow_setup as runtime

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


class KerasTrainer:
    """The one training loop of the Keras branches, logging into the stage's dvclive run."""

    def __init__(self, settings: TrainingSettings, seed: int, runtime_settings: RuntimeSettings, live: Live) -> None:
        self.settings, self.seed, self.runtime, self.live = settings, seed, runtime_settings, live

    def fit(
        self,
        name: str,
        build: Callable[[int], Any],
        train: Rows,
        val: Rows,
        fine_tune: FineTune | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Fit ``build(n_genres)`` on ``train``, stop on ``val``'s AUC; return the best model and extra metrics.

        The runtime settings (device, threads, precision, determinism) are applied first:
        TensorFlow fixes them on first use.

        With ``fine_tune``, the first ``warmup_epochs`` train what ``build`` left trainable; then
        the named layer is unfrozen (its BatchNormalization layers excepted), the model recompiled
        at the fine-tuning rate, and training goes on up to ``epochs`` in all. Epochs count on
        across both phases (Keras' numbers, dvclive's steps); the second phase's early stopping
        waits for an epoch better than the warm-up's best, and the model returned is the best
        epoch's of either phase.
        """
        settings, live = self.settings, self.live
        strategy, device = runtime.configure(self.runtime, self.seed)
        n_genres = train.labels.shape[1]
        batch = settings.batch_size * strategy.num_replicas_in_sync
        train_labels, val_labels = train.labels.astype(np.float32), val.labels.astype(np.float32)
        train_data = make_dataset(train.x, train_labels, _every(train), batch, shuffle_seed=self.seed)
        val_data = make_dataset(val.x, val_labels, _every(val), batch)
        keras.backend.clear_session()  # layer names restart from 1: the same model gives the same file
        with strategy.scope():
            model = build(n_genres)
            _compile(model, settings.learning_rate, settings.weight_decay, n_genres)
        log.info(
            "%s: %s, %d parameters, %d train / %d val movies on %s",
            name, model.name, model.count_params(), len(train), len(val), device,
        )  # fmt: skip
        logger = LiveLogger(live)
        started = time.perf_counter()
        first = settings.epochs if fine_tune is None else fine_tune.warmup_epochs
        history = _fit_phase(model, train_data, val_data, settings, logger, epochs=first)
        warmed = len(history["loss"])  # fewer than asked if the warm-up stopped early
        if fine_tune is not None and warmed < settings.epochs:
            warm_best, warm_weights = max(history["val_auc"]), model.get_weights()  # its best epoch's, restored
            with strategy.scope():
                unfreeze(model.get_layer(fine_tune.layer))
                _compile(model, fine_tune.learning_rate, settings.weight_decay, n_genres)
            log.info(
                "%s: fine-tuning %s from epoch %d at learning rate %g, %d trainable weights",
                name, fine_tune.layer, warmed + 1, fine_tune.learning_rate, len(model.trainable_weights),
            )  # fmt: skip
            later = _fit_phase(
                model, train_data, val_data, settings, logger, settings.epochs, initial_epoch=warmed,
                baseline=warm_best,
            )  # fmt: skip
            if max(later["val_auc"]) <= warm_best:
                model.set_weights(warm_weights)  # fine-tuning never beat the warm-up: keep its best
            history = {key: values + later[key] for key, values in history.items()}
        fit_s = time.perf_counter() - started
        best = int(np.argmax(history["val_auc"]))
        summary: dict[str, Any] = {"step": best, "train": {}, "val": {}}
        for key, values in history.items():
            if key != "learning_rate":
                part, metric = ("val", key[4:]) if key.startswith("val_") else ("train", key)
                summary[part][metric] = round(float(values[best]), 6)
        live.summary = summary
        epochs_run = len(history["loss"])
        extra = {
            "epochs": {"run": epochs_run, "best": best + 1},
            "throughput": {"train_per_s": round(epochs_run * len(train) / fit_s, 1)},
        }
        return model, extra


def _every(rows: Rows) -> np.ndarray:
    """The positions of all of ``rows``, in order: the rows a dataset over them batches."""
    return np.arange(len(rows))


def _compile(model: Any, learning_rate: float, weight_decay: float, n_genres: int) -> None:
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(multi_label=True, num_labels=n_genres, name="auc")],
    )


def _fit_phase(
    model: Any,
    train_data: Any,
    val_data: Any,
    settings: TrainingSettings,
    logger: LiveLogger,
    epochs: int,
    initial_epoch: int = 0,
    baseline: float | None = None,
) -> dict[str, list[float]]:
    """One ``model.fit`` up to epoch ``epochs``: early stopping on val AUC, with the best epoch's
    weights restored, and the learning rate halved on plateaus; returns its history.

    ``baseline`` (a previous phase's best val AUC): patience runs out unless an epoch beats it.
    """
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=settings.patience, restore_best_weights=True,
            baseline=baseline,
        )
    ]  # fmt: skip
    if settings.lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_auc", mode="max", factor=0.5, patience=settings.lr_patience, min_lr=1e-5
            )
        )
    history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # tf.data already shuffles, with the seed
        callbacks=[*callbacks, logger],
        verbose=2,
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def unfreeze(layer: Any) -> None:
    """Make ``layer`` trainable except its BatchNormalization layers, however deeply nested.

    A frozen BatchNormalization layer runs in inference mode (Keras 3): its statistics, fitted
    on far more images than ours, and its scale and offset stay as they were.
    """
    layer.trainable = True
    pending = list(getattr(layer, "layers", []))
    while pending:
        inner = pending.pop()
        if isinstance(inner, keras.layers.BatchNormalization):
            inner.trainable = False
        pending.extend(getattr(inner, "layers", []))
