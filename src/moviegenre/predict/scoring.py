"""How the predictions for a dataset that carries genres compare with those genres.

A catalogue given to ``predict --dataset`` may carry labels of its own (another label source, a
hand-checked sample). The pipeline's own measures, over the genres the model knows and the
dataset can score, say at once how far the two agree; a genre the dataset never or always has
has no ROC-AUC, and is named rather than averaged in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from moviegenre.evaluation.genre_sets import set_scores
from moviegenre.evaluation.metrics import per_genre_auc, scorable


def dataset_score(
    labels: Sequence[Sequence[str]], genres: list[str], proba: np.ndarray, sets: np.ndarray
) -> dict[str, Any] | None:
    """Macro ROC-AUC of ``proba`` and F1 of the genre ``sets`` against ``labels``, over the movies that
    have at least one genre and the genres they can score; None when there is nothing to score.

    ``labels`` are each movie's genre names (canonical; a genre the model does not know only makes
    the movie a negative of every genre it does); rows of ``proba`` and ``sets`` follow them.
    """
    labelled = np.array([len(names) > 0 for names in labels], dtype=bool)
    if not labelled.any():
        return None
    column = {genre: i for i, genre in enumerate(genres)}
    y = np.zeros((int(labelled.sum()), len(genres)), dtype=np.uint8)
    for row, names in enumerate(names for names, keep in zip(labels, labelled, strict=True) if keep):
        for name in names:
            if name in column:
                y[row, column[name]] = 1
    ok = scorable(y)
    if not ok.any():
        return None
    auc = per_genre_auc(y, proba[labelled])
    return {
        "roc_auc_macro": round(float(np.mean(auc[ok])), 6),
        "n_movies": int(labelled.sum()),
        "n_genres": int(ok.sum()),
        "genres_not_scored": [genre for genre, keep in zip(genres, ok, strict=True) if not keep],
        **set_scores(y[:, ok], np.asarray(sets, dtype=bool)[labelled][:, ok]),
        "per_genre_roc_auc": {genre: round(float(auc[i]), 6) for i, genre in enumerate(genres) if ok[i]},
    }
