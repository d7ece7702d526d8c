"""Layer blocks that more than one Keras branch builds on (posters: image_dl and fusion)."""

from __future__ import annotations

from typing import Any


def poster_pixels(inputs: Any, augment: bool, seed: int) -> Any:
    """uint8 posters scaled to [0, 1]; with ``augment``, randomly flipped, shifted and contrasted
    while training (the layers pass inputs through at prediction)."""
    from keras import layers

    x = layers.Rescaling(1.0 / 255)(inputs)
    if augment:
        x = layers.RandomFlip("horizontal", seed=seed)(x)
        x = layers.RandomTranslation(0.05, 0.05, fill_mode="nearest", seed=seed)(x)
        x = layers.RandomContrast(0.15, seed=seed)(x)
    return x


def bn_gap_trunk(x: Any, downsample: int, filters: tuple[int, ...]) -> Any:
    """bn_gap's conv trunk on rescaled pixels: optional average-pooling, then per width in
    ``filters`` a Conv2D + BatchNorm + ReLU + MaxPool block, then global average pooling.

    Shared with the fusion branch's poster tower (narrower ``filters``) so both keep one trunk.
    """
    from keras import layers

    if downsample > 1:
        x = layers.AveragePooling2D(downsample)(x)
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    return layers.GlobalAveragePooling2D()(x)
