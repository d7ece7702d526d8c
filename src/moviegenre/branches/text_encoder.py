"""The branch on a pretrained sentence encoder (``text_encoder``): a head on frozen plot embeddings.

embed_text turns each plot into one all-MiniLM-L6-v2 vector; this branch only learns the
head, on the text-training movies (train split plus plot-only movies), with the loop every
Keras branch trains by. The head is one model whatever its size: ``hidden_units`` wide with
dropout, or with ``hidden_units: 0`` a single sigmoid layer, i.e. one logistic regression per
genre (L2 through the optimiser's weight decay, early stopping on val like the rest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from moviegenre.branches.base import FitContext
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.heads import embedding_head
from moviegenre.branches.keras.settings import TrainingSettings


class EncoderHeadSettings(TrainingSettings):
    hidden_units: int = Field(ge=0, le=8192)  # 0: no hidden layer (logistic regression per genre)


class TextEncoderHead(KerasBranch[EncoderHeadSettings]):
    """A classifier head on ``data/features/embeddings/embeddings.npy``."""

    name = "text_encoder"
    modality = "plot"
    feature_set = "embeddings"
    Settings = EncoderHeadSettings

    def reads(self) -> tuple[str, ...]:
        return ("embeddings",)

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        width, settings = int(x.shape[1]), self.settings
        name = "text_encoder_mlp" if settings.hidden_units else "text_encoder_logistic"
        return lambda n_genres: embedding_head(width, n_genres, settings.hidden_units, settings.dropout, name)
