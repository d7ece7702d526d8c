"""Predict genres for new movies with the artifacts `dvc repro` produced.

Every transformation is the training code itself: posters go through ``decode_all`` and the
saved PCA, plots through the saved vectorisers and tokenizer, deep inputs through the same
``make_dataset``. A movie is scored by the branches that can see it (posters: image_ml,
image_dl; plots: text_ml, text_dl) and the ensemble weights are renormalised over those.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

from moviegenre import forests
from moviegenre.ensemble import combine
from moviegenre.errors import MovieGenreError
from moviegenre.image_features import GREY, IMAGES_DIR, PCA_MODEL, decode_all, pca_transform
from moviegenre.posters import to_grey
from moviegenre.text_features import COUNTS_MODEL, TEXT_DIR, TFIDF_MODEL, TOKENIZER
from moviegenre.tokenizer import Tokenizer

log = logging.getLogger(__name__)

IMAGE_BRANCHES = ("image_ml", "image_dl")
TEXT_BRANCHES = ("text_ml", "text_dl")


@dataclass
class Artifacts:
    """Everything prediction needs, loaded once; paths relative to the project root."""

    genres: list[str]
    weights: dict[str, float]
    image_size: tuple[int, int]
    pca: object
    image_ml: dict
    tfidf: object
    counts: object
    tokenizer: Tokenizer
    text_ml: dict
    image_dl: object
    text_dl: object

    @classmethod
    def load(cls, root: Path = Path(".")) -> Artifacts:
        needed = {
            "genres": root / "data/prepared/genres.json",
            "weights": root / "metrics/ensemble.json",
            "grey": root / IMAGES_DIR / GREY,
            "pca": root / IMAGES_DIR / PCA_MODEL,
            "image_ml": root / "models/image_ml.joblib",
            "tfidf": root / TEXT_DIR / TFIDF_MODEL,
            "counts": root / TEXT_DIR / COUNTS_MODEL,
            "tokenizer": root / TEXT_DIR / TOKENIZER,
            "text_ml": root / "models/text_ml.joblib",
            "image_dl": root / "models/image_dl.keras",
            "text_dl": root / "models/text_dl.keras",
        }
        missing = [str(p) for p in needed.values() if not p.is_file()]
        if missing:
            raise MovieGenreError(f"{missing[0]}: not built yet (run `dvc repro` first)")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        _, height, width = np.load(needed["grey"], mmap_mode="r").shape
        return cls(
            genres=json.loads(needed["genres"].read_text())["genres"],
            weights=json.loads(needed["weights"].read_text())["weights"],
            image_size=(height, width),
            pca=joblib.load(needed["pca"]),
            image_ml=joblib.load(needed["image_ml"]),
            tfidf=joblib.load(needed["tfidf"]),
            counts=joblib.load(needed["counts"]),
            tokenizer=Tokenizer.load(needed["tokenizer"]),
            text_ml=joblib.load(needed["text_ml"]),
            image_dl=keras.models.load_model(needed["image_dl"]),
            text_dl=keras.models.load_model(needed["text_dl"]),
        )


def predict(
    artifacts: Artifacts, posters: list[str | None], plots: list[str | None], batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Probabilities (n, n_genres) per branch and 'ensemble'; NaN rows where a branch cannot see the movie."""
    from moviegenre.deep_training import make_dataset

    n, n_genres = len(posters), len(artifacts.genres)
    out = {b: np.full((n, n_genres), np.nan) for b in (*IMAGE_BRANCHES, *TEXT_BRANCHES)}

    with_poster = np.array([i for i, p in enumerate(posters) if p is not None], dtype=int)
    if len(with_poster):
        height, width = artifacts.image_size
        rgb, colour = decode_all([posters[i] for i in with_poster], height, width)
        grey = to_grey(rgb)
        features = pca_transform(artifacts.pca, grey)
        if artifacts.image_ml["features"] == "pca+color":
            features = np.hstack([features, colour])
        out["image_ml"][with_poster] = forests.positive_proba(artifacts.image_ml["model"], features)
        pixels = rgb if artifacts.image_dl.input_shape[-1] == 3 else grey[..., None]
        rows = np.arange(len(with_poster))
        out["image_dl"][with_poster] = artifacts.image_dl.predict(
            make_dataset(pixels, None, rows, batch_size), verbose=0
        )

    with_plot = np.array([i for i, p in enumerate(plots) if p is not None], dtype=int)
    if len(with_plot):
        texts = [plots[i] for i in with_plot]
        out["text_ml"][with_plot] = forests.positive_proba(artifacts.text_ml["model"], artifacts.tfidf.transform(texts))
        text_inputs = _text_dl_inputs(artifacts, texts)
        rows = np.arange(len(texts))
        out["text_dl"][with_plot] = artifacts.text_dl.predict(
            make_dataset(text_inputs, None, rows, batch_size), verbose=0
        )
    out["ensemble"] = combine(out, artifacts.weights)
    return out


def _text_dl_inputs(artifacts: Artifacts, texts: list[str]):
    """Counts for the dense NN, token ids for the LSTM: whichever the saved model was built on."""
    if artifacts.text_dl.inputs[0].name.startswith("counts"):
        return artifacts.counts.transform(texts).tocsr()
    return artifacts.tokenizer.transform(texts)


def branches_used(by_branch: dict[str, np.ndarray], row: int) -> list[str]:
    return [b for b, p in by_branch.items() if b != "ensemble" and not np.isnan(p[row]).all()]
