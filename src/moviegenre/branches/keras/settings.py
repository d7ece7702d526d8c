"""What the Keras trainer is told by a branch: the keys every Keras branch trains by, and a second phase.

Apart from ``branch.py`` so that the trainer depends on these and not on the branch base:
``KerasBranch.fit`` imports the trainer when a fit starts, and nothing imports back.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from moviegenre.config.settings import Number, Settings


class TrainingSettings(Settings):
    """The keys every Keras branch trains by (the trainer reads these, nothing else)."""

    epochs: int = Field(ge=1, le=1000)
    batch_size: int = Field(ge=1, le=4096)
    learning_rate: Number = Field(ge=1e-6, le=1.0)
    weight_decay: Number = Field(ge=0.0, le=1.0)
    lr_patience: int = Field(ge=0, le=1000)
    dropout: Number = Field(ge=0.0, le=0.95)
    patience: int = Field(ge=1, le=1000)


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
