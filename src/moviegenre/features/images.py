"""Poster features: decoded pixel arrays, a PCA fitted on train, and colour statistics.

``PosterFeaturizer`` is the fitted state (poster size and PCA). The featurize_images stage
and ``moviegenre predict`` both turn pixels into arrays through ``to_grey`` and its
``pca_transform`` (``arrays`` composes them for predict), so the two cannot drift apart. Rows
of the stage's output are the prepared table's movies that have a poster, in table order
(``index.csv`` lists them).

The PCA is the one BLAS-heavy step, and BLAS kernels (OpenBLAS picks one per CPU, or as
``OPENBLAS_CORETYPE`` says) sum in different orders, so its last bits differ from machine to
machine. It is therefore fitted and applied in float64, whose kernel-to-kernel differences are
some orders of magnitude below the decimals kept: the fitted arrays are rounded to
``PCA_DECIMALS`` and the features to ``FEATURE_DECIMALS``, so every kernel writes the same bytes.

The fitted PCA is kept as its two arrays, the components and the mean, in ``.npy`` files read
without unpickling (a pickled scikit-learn object runs whatever code the file names when it is
loaded, and a feature directory may come from a DVC remote), and checked against ``size.json``
before use. The projection is scikit-learn's own formula, ``x @ components.T - mean @
components.T`` (the centring after the product), so the features keep their bytes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.decomposition import PCA
from tqdm import tqdm

from moviegenre.config.settings import Settings
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir, json_text, read_json, read_npy
from moviegenre.data.posters import load_rgb, to_grey
from moviegenre.features.colour import N_COLOUR_FEATURES, colour_features
from moviegenre.features.store import INDEX, NpyWriter, write_arrays

log = logging.getLogger(__name__)


class ImagesSettings(Settings):
    height: int = Field(ge=16, le=1024)
    width: int = Field(ge=16, le=1024)
    pca_components: int = Field(ge=1, le=1000)
    workers: int = Field(ge=0, le=256)


FEATURE_SET = "images"
PCA_COMPONENTS, PCA_MEAN, SIZE = "pca_components.npy", "pca_mean.npy", "size.json"
FIT_BLOCK = 1024  # training posters copied into the PCA's float array per step
PCA_DECIMALS = 7  # of the fitted PCA's arrays (components are at most about 0.05)
FEATURE_DECIMALS = 5  # of the PCA features (about +-40)
DECODE_CHUNK = 64  # posters per task of a decoding process, and per block written to rgb.npy
# the fitted state behind each array: a branch's spec fingerprints the files of what it reads
STATE_FILES = {"grey": (SIZE,), "rgb": (SIZE,), "colour": (SIZE,), "pca": (SIZE, PCA_COMPONENTS, PCA_MEAN)}


def _decode_chunk(paths: list[str], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.stack([load_rgb(p, height, width) for p in paths])
    return rgb, colour_features(rgb)


def decode_chunks(
    paths: list[str], height: int, width: int, workers: int = 0, chunk: int = DECODE_CHUNK, progress: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """RGB uint8 (m, height, width, 3) and colour features (m, 81) of ``paths``, ``chunk`` posters
    at a time, in order.

    Each process also computes the colour statistics of what it decoded: both cores share
    the numpy work, not only the JPEG decoding.
    """
    workers = workers or os.cpu_count() or 1
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    job = partial(_decode_chunk, height=height, width=width)
    with (
        contextlib.ExitStack() as stack,
        tqdm(total=len(paths), desc="decode posters", unit=" posters", disable=not progress) as bar,
    ):
        # a daemonic process (a Dask worker under its nanny) may not start children: it decodes alone
        parallel = workers > 1 and len(chunks) > 1 and not multiprocessing.current_process().daemon
        mapper = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map if parallel else map
        for pixels, stats in mapper(job, chunks):
            yield pixels, stats
            bar.update(len(pixels))


def decode_all(
    paths: list[str], height: int, width: int, workers: int = 0, chunk: int = DECODE_CHUNK, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (n, height, width, 3) and colour features (n, 81) of ``paths``, in memory."""
    rgb = np.empty((len(paths), height, width, 3), dtype=np.uint8)
    colour = np.empty((len(paths), N_COLOUR_FEATURES), dtype=np.float32)
    start = 0
    for pixels, stats in decode_chunks(paths, height, width, workers, chunk, progress):
        rgb[start : start + len(pixels)], colour[start : start + len(pixels)] = pixels, stats
        start += len(pixels)
    return rgb, colour


class PosterFeaturizer:
    """Poster size and the PCA of greyscale pixels fitted on training posters: its components
    (k, height * width) and the training pixels' mean (height * width,), float64."""

    def __init__(self, height: int, width: int, components: np.ndarray, mean: np.ndarray) -> None:
        self.height, self.width, self.components, self.mean = height, width, components, mean

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, grey: np.ndarray, components: int, seed: int, rows: np.ndarray | None = None) -> PosterFeaturizer:
        """PCA of flattened greyscale pixels in [0, 1] of the training posters only (``rows`` of
        ``grey``; all of them by default).

        The float copy PCA needs is the largest thing featurize_images holds (8 bytes a pixel
        of every training poster), so it is filled block by block and centred in place."""
        rows = np.arange(len(grey)) if rows is None else np.asarray(rows)
        _, height, width = grey.shape
        flat = np.empty((len(rows), height * width), dtype=np.float64)
        for start in range(0, len(rows), FIT_BLOCK):
            flat[start : start + FIT_BLOCK] = grey[rows[start : start + FIT_BLOCK]].reshape(-1, height * width)
        flat /= 255.0  # the same division as _flatten's
        components = min(components, *flat.shape)
        pca = PCA(n_components=components, svd_solver="randomized", random_state=seed, copy=False).fit(flat)
        log.info(
            "PCA: %d components explain %.1f%% of train pixel variance",
            pca.n_components_,
            100 * pca.explained_variance_ratio_.sum(),
        )
        return cls(height, width, np.round(pca.components_, PCA_DECIMALS), np.round(pca.mean_, PCA_DECIMALS))

    def arrays(self, rgb: np.ndarray, colour: np.ndarray) -> dict[str, np.ndarray]:
        """Every image array from decoded pixels: what the stage stores and predict computes."""
        grey = to_grey(rgb)
        return {"grey": grey, "rgb": rgb, "pca": self.pca_transform(grey), "colour": colour}

    def transform(self, paths: list[str], workers: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
        rgb, colour = decode_all(paths, self.height, self.width, workers, progress=progress)
        return self.arrays(rgb, colour)

    def pca_transform(self, grey: np.ndarray, batch: int = 1024) -> np.ndarray:
        """PCA features of greyscale posters, ``batch`` posters per product.

        scikit-learn's ``PCA.transform`` step for step: the product first, then the mean's
        projection subtracted (the same operations on the same arrays give the same bytes).
        """
        offset = self.mean.reshape(1, -1) @ self.components.T
        parts = []
        for i in range(0, len(grey), batch):
            projected = _flatten(grey[i : i + batch]) @ self.components.T
            projected -= offset
            parts.append(np.round(projected, FEATURE_DECIMALS))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.n_components), np.float32)

    def save(self, directory: Path) -> None:
        np.save(directory / PCA_COMPONENTS, np.ascontiguousarray(self.components), allow_pickle=False)
        np.save(directory / PCA_MEAN, np.ascontiguousarray(self.mean), allow_pickle=False)
        (directory / SIZE).write_text(json_text({"height": self.height, "width": self.width}))

    @classmethod
    def load(cls, directory: Path) -> PosterFeaturizer:
        """The featurizer saved in ``directory``, each file checked before use: one line naming
        the first that is missing or not what ``save`` writes (a directory written by an older
        version held a pickled PCA, ``pca.joblib``, which is never read)."""
        fix = "run `dvc repro featurize_images`"
        size = read_json(directory / SIZE, fix)
        if not (
            isinstance(size, dict) and all(type(size.get(key)) is int and size[key] >= 1 for key in ("height", "width"))
        ):
            raise MovieGenreError(f"{directory / SIZE}: not a poster size (positive height and width); {fix}")
        pixels = size["height"] * size["width"]
        components = read_npy(directory / PCA_COMPONENTS, fix)
        if components.dtype != np.float64 or components.ndim != 2 or components.shape[1:] != (pixels,):
            raise MovieGenreError(
                f"{directory / PCA_COMPONENTS}: {_describe(components)} where float64 (components, {pixels}) "
                f"belongs ({size['height']} x {size['width']} posters); {fix}"
            )
        mean = read_npy(directory / PCA_MEAN, fix)
        if mean.dtype != np.float64 or mean.shape != (pixels,):
            raise MovieGenreError(f"{directory / PCA_MEAN}: {_describe(mean)} where float64 ({pixels},) belongs; {fix}")
        for path, array in ((directory / PCA_COMPONENTS, components), (directory / PCA_MEAN, mean)):
            if not np.isfinite(array).all():
                raise MovieGenreError(f"{path}: holds a value that is not a finite number; {fix}")
        if not len(components):
            raise MovieGenreError(f"{directory / PCA_COMPONENTS}: holds no component; {fix}")
        return cls(size["height"], size["width"], components, mean)


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype} {tuple(array.shape)}"


def featurize_images(table: pd.DataFrame, settings: ImagesSettings, seed: int, out_dir: Path) -> dict:
    """Decode every poster once, fit PCA on train, write arrays, index and fitted state.

    Memory follows the greyscale pixels, not the RGB ones: each decoded chunk of RGB posters
    goes straight to ``rgb.npy`` and only the greyscale array (a third of the RGB one) and
    the training posters' float copy for the PCA are held whole: holding everything would
    make the stage's peak grow with several copies of every poster's pixels.
    """
    with_poster = table[table["poster"].notna()].reset_index(drop=True)
    if with_poster.empty:
        raise MovieGenreError("no movie in the prepared table has a poster")
    n, height, width = len(with_poster), settings.height, settings.width
    grey = np.empty((n, height, width), dtype=np.uint8)
    colour = np.empty((n, N_COLOUR_FEATURES), dtype=np.float32)
    with atomic_dir(out_dir) as tmp:
        with_poster[["id", "split"]].to_csv(tmp / INDEX, index=False)
        with NpyWriter(tmp / "rgb.npy", (n, height, width, 3), np.uint8) as rgb_file:
            start = 0
            chunks = decode_chunks(list(with_poster["poster"]), height, width, settings.workers, DECODE_CHUNK)
            for rgb, stats in chunks:
                rgb_file.write(rgb)
                grey[start : start + len(rgb)], colour[start : start + len(rgb)] = to_grey(rgb), stats
                start += len(rgb)
        train_rows = np.flatnonzero((with_poster["split"] == "train").to_numpy())
        featurizer = PosterFeaturizer.fit(grey, settings.pca_components, seed, rows=train_rows)
        arrays = {"grey": grey, "pca": featurizer.pca_transform(grey), "colour": colour}
        write_arrays(tmp, arrays)
        featurizer.save(tmp)
    return {"rgb": (n, height, width, 3)} | {name: array.shape for name, array in arrays.items()}


def _flatten(grey: np.ndarray) -> np.ndarray:
    return grey.reshape(len(grey), -1).astype(np.float64) / 255.0
