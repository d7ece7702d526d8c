"""A classifier head on frozen embeddings: what the encoder branches (plot and poster) train."""

from __future__ import annotations

from typing import Any

import numpy as np


def embedding_head(
    input_dim: int,
    n_genres: int,
    hidden_units: int,
    dropout: float,
    name: str,
    standardise: tuple[np.ndarray, np.ndarray] | None = None,
    l2: float = 0.0,
) -> Any:
    """Genre sigmoids on an embedding: a hidden layer with dropout (``hidden_units`` > 0) or none
    (one logistic regression per genre).

    ``standardise`` (the training rows' mean and variance) puts a fixed Normalization layer first,
    so that an L2 penalty (``l2`` on every kernel) weighs all dimensions alike, as a logistic
    regression on standardised features does; both live in the saved model.
    """
    import keras
    from keras import layers

    regulariser = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((input_dim,), name="embedding")
    x = inputs
    if standardise is not None:
        mean, variance = standardise
        x = layers.Normalization(mean=mean, variance=variance, name="standardise")(x)
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", kernel_regularizer=regulariser)(x)
        x = layers.Dropout(dropout)(x)
    elif standardise is not None and dropout:
        x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(
        n_genres, activation="sigmoid", dtype="float32", name="genres", kernel_regularizer=regulariser
    )(x)
    return keras.Model(inputs, outputs, name=name)
