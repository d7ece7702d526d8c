"""The ``runtime`` section: how the branches compute, whatever they learn.

Every branch reads it, so a train stage depends on it: processes for the forests, and for
the Keras branches the device, precision, determinism and TensorFlow's thread pools. None of
it changes what a forest learns; determinism and precision can change a Keras model's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from moviegenre.config.keys import boolean, choice, integer, processes
from moviegenre.config.settings import setting


@dataclass(frozen=True)
class RuntimeSettings:
    device: str = setting(choice("auto", "cpu", "gpu"))
    mixed_precision: bool = setting(boolean())
    deterministic: bool = setting(boolean())
    intra_op_threads: int = setting(integer(0, 256))
    inter_op_threads: int = setting(integer(0, 256))
    n_jobs: int = setting(processes(256))
