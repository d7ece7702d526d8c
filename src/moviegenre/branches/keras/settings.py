"""What the Keras trainer is told by a branch: the keys every Keras branch trains by, and a second phase.

Apart from ``branch.py`` so that the trainer depends on these and not on the branch base:
``KerasBranch.fit`` imports the trainer when a fit starts, and nothing imports back.
"""

from __future__ import annotations

from dataclasses import dataclass

from moviegenre.config.keys import integer, number
from moviegenre.config.settings import setting


@dataclass(frozen=True)
class TrainingSettings:
    """The keys every Keras branch trains by (the trainer reads these, nothing else)."""

    epochs: int = setting(integer(1, 1000))
    batch_size: int = setting(integer(1, 4096))
    learning_rate: float = setting(number(1e-6, 1.0))
    weight_decay: float = setting(number(0.0, 1.0))
    lr_patience: int = setting(integer(0, 1000))
    dropout: float = setting(number(0.0, 0.95))
    patience: int = setting(integer(1, 1000))


@dataclass(frozen=True)
class FineTune:
    """A second training phase, for a pretrained part trained frozen first.

    After ``warmup_epochs`` epochs (of the run's ``epochs``), the model's layer ``layer`` is
    unfrozen except for its BatchNormalization layers, and training goes on at
    ``learning_rate``; ``KerasTrainer.fit`` runs it.
    """

    layer: str
    warmup_epochs: int
    learning_rate: float
