"""TensorFlow runtime set-up for every Keras model: device, threads, precision, determinism, seed.

Must run before any model is built: TensorFlow fixes its devices and thread pools on first
use. Returns the distribution strategy to build and train under (several GPUs: mirrored).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)


class RuntimeChoices(Protocol):
    """What the set-up reads of params.yaml's ``runtime`` section (``config.runtime.RuntimeSettings``).

    A protocol, not the settings class, because ``core`` sits below ``config``.
    """

    @property
    def device(self) -> str: ...
    @property
    def mixed_precision(self) -> bool: ...
    @property
    def deterministic(self) -> bool: ...
    @property
    def intra_op_threads(self) -> int: ...
    @property
    def inter_op_threads(self) -> int: ...


def configure(settings: RuntimeChoices, seed: int) -> tuple[Any, str]:
    """Apply ``runtime.*``; return ``(strategy, device_name)``."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    device = settings.device
    if device == "gpu" and not gpus:
        raise MovieGenreError(
            "runtime.device is 'gpu' but TensorFlow sees no GPU (install the [gpu] extra and a CUDA "
            "driver, or set runtime.device to auto or cpu)"
        )
    use_gpu = bool(gpus) and device in ("auto", "gpu")
    if not use_gpu and gpus:
        tf.config.set_visible_devices([], "GPU")
    if use_gpu:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    if settings.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
    if settings.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)

    keras.utils.set_random_seed(seed)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    if settings.mixed_precision and use_gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")

    if use_gpu and len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        name = f"{len(gpus)} GPUs (mirrored)"
    else:
        strategy = tf.distribute.get_strategy()
        name = "GPU" if use_gpu else "CPU"
    log.info(
        "runtime: %s, precision %s, deterministic ops %s",
        name,
        keras.mixed_precision.global_policy().name,
        settings.deterministic,
    )
    return strategy, name
