"""The fusion branch (``fusion``): one Keras network over a movie's poster and its plot.

The other branches each see one modality and meet only in the ensemble's weighted mean;
here a poster tower (``image_input``: image_dl's batch-normalised conv trunk, narrower, on
average-pooled pixels, or one Dense layer on the poster encoder's embeddings) and a plot tower
(one Dense layer on log1p term counts or on the sentence encoder's embeddings) each end in a
batch-normalised embedding ``units`` wide; the two are merged
(``method``: concatenated, added, multiplied or their element-wise maximum), then Dropout and
the genre layer, so the network can learn interactions between what the poster shows and
what the plot says.

It trains on the movies that have both, i.e. the image feature set's rows (every movie
with a poster has a plot); the other arrays are aligned to them by movie id, and val and test
are the movies every branch scores. A movie without a poster or without a plot is not
scored by it (modality ``both``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field

from moviegenre.branches.base import FitContext, InputParts
from moviegenre.branches.keras.blocks import bn_gap_trunk, poster_pixels
from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.keras.settings import TrainingSettings

# method -> the Keras merge layer; all but concat need towers of equal width (both are ``units``)
MERGE_LAYERS = {"concat": "Concatenate", "add": "Add", "multiply": "Multiply", "max": "Maximum"}
# text_input -> the array it reads, as "feature set/array"
TEXT_ARRAYS = {"counts": "text/counts", "embeddings": "embeddings/embeddings"}
# image_input -> the array it reads: pixels (a conv tower) or the poster encoder's embeddings (a Dense tower)
IMAGE_ARRAYS = {"pixels": "images/rgb", "embeddings": "poster_embeddings/embeddings"}
CONV_BLOCKS = 4  # as image_dl's bn_gap: 96 x 64 pooled by 2 ends at 3 x 2 before global pooling


def fusion_model(
    poster_shape: tuple[int, ...], text_dim: int, n_genres: int, settings: FusionSettings, seed: int
) -> Any:
    """The uncompiled two-tower network; its inputs are named ``poster`` and ``plot``."""
    import keras
    from keras import layers

    units = settings.units
    plot = keras.Input((text_dim,), name="plot")
    if settings.image_input == "pixels":
        poster = keras.Input(poster_shape, dtype="uint8", name="poster")
        x = poster_pixels(poster, settings.augment, seed)
        filters = tuple(settings.conv_filters * 2**block for block in range(CONV_BLOCKS))
        x = bn_gap_trunk(x, settings.downsample, filters)
    else:  # the frozen poster encoder's vector: a Dense tower like the plot's
        poster = keras.Input(poster_shape, name="poster")
        x = poster
    image_embedding = _embedding(x, units, "poster")
    text_embedding = _embedding(plot, units, "plot")
    merge = getattr(layers, MERGE_LAYERS[settings.method])
    x = merge(name="merge")([image_embedding, text_embedding])
    x = layers.Dropout(settings.dropout)(x)
    outputs = layers.Dense(n_genres, activation="sigmoid", dtype="float32", name="genres")(x)
    return keras.Model({"poster": poster, "plot": plot}, outputs, name=f"fusion_{settings.method}")


def _embedding(x: Any, units: int, tower: str) -> Any:
    """A tower's ``units``-wide embedding: Dense + ReLU, batch-normalised so that neither tower's
    scale dominates an add, multiply or max (on counts it also helps val AUC: docs/results.md)."""
    from keras import layers

    x = layers.Dense(units, activation="relu", name=f"{tower}_embedding")(x)
    return layers.BatchNormalization(name=f"{tower}_norm")(x)


class FusionSettings(TrainingSettings):
    method: Literal["concat", "add", "multiply", "max"]  # MERGE_LAYERS
    image_input: Literal["pixels", "embeddings"]  # IMAGE_ARRAYS
    text_input: Literal["counts", "embeddings"]  # TEXT_ARRAYS
    units: int = Field(ge=1, le=4096)
    conv_filters: int = Field(ge=1, le=256)
    downsample: int = Field(ge=1, le=8)
    augment: bool


class FusionNet(KerasBranch[FusionSettings]):
    """Poster pixels or embeddings and plot features (text.counts or embeddings) in one network."""

    name = "fusion"
    modality = "both"
    feature_set = "images"  # its rows: the movies with a poster, all of which have a plot
    Settings = FusionSettings

    def reads(self) -> tuple[str, ...]:
        return (IMAGE_ARRAYS[self.settings.image_input], TEXT_ARRAYS[self.settings.text_input])

    def inputs(self, arrays: Mapping[str, Any]) -> InputParts:
        poster, plot = self.reads()
        return InputParts({"poster": arrays[poster], "plot": arrays[plot]})

    def builder(self, x: Any, context: FitContext) -> Callable[[int], Any]:
        poster_shape = tuple(int(d) for d in x.parts["poster"].shape[1:])
        text_dim = int(x.parts["plot"].shape[1])
        return lambda n_genres: fusion_model(poster_shape, text_dim, n_genres, self.settings, self.seed)
