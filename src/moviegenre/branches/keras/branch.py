"""The base of every Keras branch: one network, fitted by the shared trainer, saved as ``.keras``.

A subclass says only how to build its network (``builder``) and, for a pretrained part, a
second phase (``fine_tune``). The trainer is imported when a fit starts, not with this
module: prediction loads Keras branches and must not pay for the training loop and dvclive.
The imports run one way: this module imports the trainer, which needs only ``settings.py``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from moviegenre.branches.base import Branch, FitContext, ModelSpec, Rows
from moviegenre.branches.keras.common import load_keras, predict_batches, save_keras
from moviegenre.branches.keras.settings import FineTune, TrainingSettings

T = TypeVar("T", bound=TrainingSettings)


class KerasBranch(Branch[T]):
    """A branch whose model is one Keras network: subclasses say only how to build it.

    Fitting goes through the shared ``KerasTrainer``; prediction, saving and loading are the
    same for every Keras branch.
    """

    epochs = True
    model_file = "model.keras"

    def __init__(self, settings: T | Mapping[str, object], seed: int, spec: ModelSpec | None = None) -> None:
        super().__init__(settings, seed, spec)
        self.model: Any = None

    @abstractmethod
    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        """A function from the number of genres to an uncompiled model for inputs like ``x``.

        ``x`` is the train rows' input: what a part of the model fitted to the data (a
        standardisation's mean and variance) is fitted on, and the row shape of every input.
        """

    def fine_tune(self) -> FineTune | None:
        """The second phase to train after a frozen warm-up, if any (a pretrained backbone's)."""
        return None

    def fit(self, train: Rows, val: Rows, context: FitContext) -> dict[str, Any]:
        """Train on ``train``, stopping early on ``val``'s macro AUC (the trainer's loop)."""
        from moviegenre.branches.keras.trainer import KerasTrainer

        trainer = KerasTrainer(self.settings, self.seed, context.runtime, context.live)
        self.model, extra = trainer.fit(self.name, self.builder(train.x, context), train, val, self.fine_tune())
        return extra

    def predict_proba(self, x: Any) -> np.ndarray:
        return predict_batches(self.model, x)

    def save_model(self, directory: Path) -> None:
        save_keras(self.model, directory / self.model_file)

    def load_model(self, directory: Path) -> None:
        self.model = load_keras(directory / self.model_file)
