"""The branch on a pretrained poster encoder (``image_encoder``): a head on frozen poster embeddings.

embed_posters turns each poster into one EfficientNet-Lite0 vector (ImageNet weights); this
branch learns only the head, on the training posters, with the loop every Keras branch trains
by. The embeddings are standardised by the training posters' mean and variance inside the
model, and the head's kernels carry an L2 penalty: with a few thousand posters and 1,280
dimensions a strongly regularised linear head is what val prefers (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.heads import embedding_head
from moviegenre.branches.keras.settings import TrainingSettings
from moviegenre.config.settings import Number


class PosterHeadSettings(TrainingSettings):
    hidden_units: int = Field(ge=0, le=8192)  # 0: no hidden layer (logistic regression per genre)
    standardise: bool  # by the training posters' mean and variance, inside the model
    l2: Number = Field(ge=0.0, le=10.0)  # L2 penalty on the head's kernels


class ImageEncoderHead(KerasBranch[PosterHeadSettings]):
    """A classifier head on ``data/features/poster_embeddings/embeddings.npy``."""

    name = "image_encoder"
    modality = "poster"
    feature_set = "poster_embeddings"
    Settings = PosterHeadSettings

    def reads(self) -> tuple[str, ...]:
        return ("embeddings",)

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        """The head, after a standardisation by ``x``'s mean and variance (the train posters') if asked."""
        settings = self.settings
        standardise = None
        if settings.standardise:
            train = np.asarray(x, dtype=np.float64)
            standardise = (train.mean(axis=0).astype(np.float32), train.var(axis=0).astype(np.float32))
        width = int(x.shape[1])
        return lambda n_genres: embedding_head(
            width, n_genres, settings.hidden_units, settings.dropout, "image_encoder_head", standardise, settings.l2
        )
