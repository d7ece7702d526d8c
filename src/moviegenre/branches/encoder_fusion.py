"""The branch on both pretrained encoders (``encoder_fusion``): one head on a movie's poster and plot embeddings.

A movie with both is one vector: its EfficientNet-Lite0 poster embedding beside its MiniLM plot
embedding, standardised by the training movies' mean and variance inside the model (the poster
part scaled by ``poster_weight``, which weighs it against the plot under the L2 penalty), then
the head the encoder branches train. Unlike ``fusion`` there is no tower to learn: a few
thousand movies are enough for a linear or shallow head on features this good, not for a
network over pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic import Field

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.heads import embedding_head
from moviegenre.branches.keras.settings import TrainingSettings
from moviegenre.config.settings import Number

POSTER, PLOT = "poster_embeddings/embeddings", "embeddings/embeddings"


class EncoderFusionSettings(TrainingSettings):
    hidden_units: int = Field(ge=0, le=8192)  # 0: no hidden layer (logistic regression per genre)
    l2: Number = Field(ge=0.0, le=10.0)  # L2 penalty on the head's kernels
    poster_weight: Number = Field(ge=0.0, le=10.0)  # the standardised poster part's scale (plot: 1)


class EncoderFusion(KerasBranch[EncoderFusionSettings]):
    """A head on [poster embedding, plot embedding] of the movies with both."""

    name = "encoder_fusion"
    modality = "both"
    feature_set = "poster_embeddings"  # its rows: the movies with a poster, all of which have a plot
    Settings = EncoderFusionSettings

    def reads(self) -> tuple[str, ...]:
        return (POSTER, PLOT)

    def inputs(self, arrays: Mapping[str, Any]) -> np.ndarray:
        """One row per movie: its poster embedding, then its plot embedding."""
        return np.hstack([np.asarray(arrays[POSTER], dtype=np.float32), np.asarray(arrays[PLOT], dtype=np.float32)])

    def describe_input(self, arrays: Mapping[str, Any]) -> str:
        return f"poster {np.shape(arrays[POSTER])[1]} + plot {np.shape(arrays[PLOT])[1]}"

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        """The head after a standardisation by ``x``'s mean and variance (the train movies'), the
        poster part of the row (its first columns, as ``inputs`` joins them) scaled by ``poster_weight``."""
        settings = self.settings
        (poster_dim,) = context.array_shapes[POSTER]
        train = np.asarray(x, dtype=np.float64)
        mean, variance = train.mean(axis=0), train.var(axis=0)
        variance[:poster_dim] /= max(settings.poster_weight, 1e-6) ** 2  # (x - mean) / std, times the weight
        standardise = (mean.astype(np.float32), variance.astype(np.float32))
        width = int(x.shape[1])
        return lambda n_genres: embedding_head(
            width, n_genres, settings.hidden_units, settings.dropout, "encoder_fusion_head", standardise, settings.l2
        )
