"""predict --dataset's score against the genres a dataset carries: which movies and genres count."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from moviegenre.predict.scoring import dataset_score

GENRES = ["Action", "Comedy", "Drama"]


def test_the_score_is_over_labelled_movies_and_the_genres_they_can_score() -> None:
    labels = [["Action"], ["Comedy", "Action"], [], ["Short"], ["Action", "Comedy"]]
    proba = np.array([[0.9, 0.2, 0.1], [0.6, 0.7, 0.3], [0.1, 0.1, 0.9], [0.2, 0.3, 0.8], [0.4, 0.8, 0.2]])
    sets = proba >= 0.5
    score = dataset_score(labels, GENRES, proba, sets)
    assert score is not None
    # the movie without genres is left out; "Short" (unknown to the model) makes a negative of every genre
    rows = [0, 1, 3, 4]
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 0]])
    assert score["n_movies"] == 4 and score["n_genres"] == 2 and score["genres_not_scored"] == ["Drama"]
    expected = [roc_auc_score(y[:, g], proba[rows, g]) for g in (0, 1)]
    assert score["per_genre_roc_auc"] == pytest.approx(dict(zip(["Action", "Comedy"], expected, strict=True)))
    assert score["roc_auc_macro"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert score["f1_macro"] == pytest.approx(f1_score(y[:, :2], sets[rows][:, :2], average="macro"), abs=1e-6)


def test_nothing_to_score_is_no_score() -> None:
    proba = np.full((2, 3), 0.5)
    assert dataset_score([[], []], GENRES, proba, proba > 0.4) is None
    assert dataset_score([["Drama"], ["Drama"]], GENRES, proba, proba > 0.4) is None  # one class everywhere
