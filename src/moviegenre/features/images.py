"""Poster features: decoded pixel arrays, a PCA fitted on train, and colour statistics.

``PosterFeaturizer`` is the fitted state (poster size and PCA). The featurize_images stage
and ``moviegenre predict`` both turn pixels into arrays through its ``arrays`` method, so
the two cannot drift apart. Rows of the stage's output are the prepared table's movies that
have a poster, in table order (``index.csv`` lists them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text
from moviegenre.data.posters import load_rgb, to_grey
from moviegenre.features.colour import N_COLOUR_FEATURES, colour_features
from moviegenre.features.store import INDEX, write_arrays

log = logging.getLogger(__name__)

FEATURE_SET = "images"
PCA_MODEL, SIZE = "pca.joblib", "size.json"
# the fitted state behind each array: a branch's spec fingerprints the files of what it reads
STATE_FILES = {"grey": (SIZE,), "rgb": (SIZE,), "colour": (SIZE,), "pca": (SIZE, PCA_MODEL)}


def _decode_chunk(paths: list[str], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.stack([load_rgb(p, height, width) for p in paths])
    return rgb, colour_features(rgb)


def decode_all(
    paths: list[str], height: int, width: int, workers: int = 0, chunk: int = 64, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (n, height, width, 3) and colour features (n, 81) of ``paths``.

    Work goes out in chunks so that each process also computes the colour statistics of
    what it decoded: both cores share the numpy work, not only the JPEG decoding.
    """
    workers = workers or os.cpu_count() or 1
    rgb = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    colour = np.empty((len(paths), N_COLOUR_FEATURES), dtype=np.float32)
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    job = partial(_decode_chunk, height=height, width=width)
    with (
        contextlib.ExitStack() as stack,
        tqdm(total=len(paths), desc="decode posters", unit=" posters", disable=not progress) as bar,
    ):
        parallel = workers > 1 and len(chunks) > 1
        mapper = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map if parallel else map
        start = 0
        for pixels, stats in mapper(job, chunks):
            rgb[start : start + len(pixels)], colour[start : start + len(pixels)] = pixels, stats
            start += len(pixels)
            bar.update(len(pixels))
    return rgb, colour


class PosterFeaturizer:
    """Poster size and the PCA of greyscale pixels fitted on training posters."""

    def __init__(self, height: int, width: int, pca: PCA) -> None:
        self.height, self.width, self.pca = height, width, pca

    @classmethod
    def fit(cls, grey_train: np.ndarray, components: int, seed: int) -> PosterFeaturizer:
        """PCA of flattened greyscale pixels in [0, 1] of the training posters only."""
        flat = _flatten(grey_train)
        components = min(components, *flat.shape)
        pca = PCA(n_components=components, svd_solver="randomized", random_state=seed).fit(flat)
        _, height, width = grey_train.shape
        return cls(height, width, pca)

    def arrays(self, rgb: np.ndarray, colour: np.ndarray) -> dict[str, np.ndarray]:
        """Every image array from decoded pixels: what the stage stores and predict computes."""
        grey = to_grey(rgb)
        return {"grey": grey, "rgb": rgb, "pca": self.pca_transform(grey), "colour": colour}

    def transform(self, paths: list[str], workers: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
        rgb, colour = decode_all(paths, self.height, self.width, workers, progress=progress)
        return self.arrays(rgb, colour)

    def pca_transform(self, grey: np.ndarray, batch: int = 1024) -> np.ndarray:
        parts = [self.pca.transform(_flatten(grey[i : i + batch])) for i in range(0, len(grey), batch)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.pca.n_components_), np.float32)

    def save(self, directory: Path) -> None:
        joblib.dump(self.pca, directory / PCA_MODEL)
        (directory / SIZE).write_text(json_text({"height": self.height, "width": self.width}))

    @classmethod
    def load(cls, directory: Path) -> PosterFeaturizer:
        if not (directory / SIZE).is_file():
            raise MovieGenreError(f"{directory / SIZE}: not found (run `dvc repro featurize_images`)")
        size = json.loads((directory / SIZE).read_text())
        return cls(size["height"], size["width"], joblib.load(directory / PCA_MODEL))


def featurize_images(table: pd.DataFrame, settings: dict, seed: int, out_dir: Path) -> dict:
    """Decode every poster once, fit PCA on train, write arrays, index and fitted state."""
    with_poster = table[table["poster"].notna()].reset_index(drop=True)
    if with_poster.empty:
        raise MovieGenreError("no movie in the prepared table has a poster")
    rgb, colour = decode_all(list(with_poster["poster"]), settings["height"], settings["width"], settings["workers"])
    train_rows = np.flatnonzero((with_poster["split"] == "train").to_numpy())
    featurizer = PosterFeaturizer.fit(to_grey(rgb[train_rows]), settings["pca_components"], seed)
    arrays = featurizer.arrays(rgb, colour)
    log.info(
        "PCA: %d components explain %.1f%% of train pixel variance",
        featurizer.pca.n_components_,
        100 * featurizer.pca.explained_variance_ratio_.sum(),
    )
    with atomic_dir(out_dir) as tmp:
        with_poster[["id", "split"]].to_csv(tmp / INDEX, index=False)
        write_arrays(tmp, arrays)
        featurizer.save(tmp)
    return {name: array.shape for name, array in arrays.items()}


def _flatten(grey: np.ndarray) -> np.ndarray:
    return grey.reshape(len(grey), -1).astype(np.float32) / 255.0
