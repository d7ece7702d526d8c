"""The ``runtime`` section: how the branches compute, whatever they learn.

Every branch reads it, so a train stage depends on it: processes for the forests, and for
the Keras branches the device, precision, determinism and TensorFlow's thread pools. None of
it changes what a forest learns; determinism and precision can change a Keras model's bytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from moviegenre.config.settings import Settings, checked

# A process count as joblib takes it: -1 for every core, else 1 to 256 (joblib refuses 0).
Processes = Annotated[int, checked(lambda value: value == -1 or 1 <= value <= 256, "-1 (every core) or in [1, 256]")]


class RuntimeSettings(Settings):
    device: Literal["auto", "cpu", "gpu"]
    mixed_precision: bool
    deterministic: bool
    intra_op_threads: int = Field(ge=0, le=256)
    inter_op_threads: int = Field(ge=0, le=256)
    n_jobs: Processes
