"""Poster features: decoded pixel arrays, PCA fitted on train, and colour/texture statistics.

Pixels are decoded once, in parallel, into uint8 arrays that later stages memory-map. Rows are
the prepared table's movies that have a poster, in table order (``index.csv`` lists them).
"""

from __future__ import annotations

import contextlib
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

from moviegenre.atomic import atomic_dir
from moviegenre.errors import MovieGenreError
from moviegenre.feature_index import INDEX
from moviegenre.posters import load_rgb, to_grey

log = logging.getLogger(__name__)

N_COLOUR_FEATURES = 81

IMAGES_DIR = Path("data/features/images")
GREY, RGB, PCA_FEATURES, COLOUR, PCA_MODEL = "grey.npy", "rgb.npy", "pca.npy", "colour.npy", "pca.joblib"


def _decode_chunk(paths: list[str], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.stack([load_rgb(p, height, width) for p in paths])
    return rgb, colour_features(rgb)


def decode_all(
    paths: list[str], height: int, width: int, workers: int = 0, chunk: int = 64
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
        tqdm(total=len(paths), desc="decode posters", unit=" posters") as bar,
    ):
        parallel = workers > 1 and len(chunks) > 1
        mapper = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map if parallel else map
        start = 0
        for pixels, stats in mapper(job, chunks):
            rgb[start : start + len(pixels)], colour[start : start + len(pixels)] = pixels, stats
            start += len(pixels)
            bar.update(len(pixels))
    return rgb, colour


def featurize_images(table: pd.DataFrame, settings: dict, seed: int, out_dir: Path = IMAGES_DIR) -> dict:
    """Decode every poster once, fit PCA on train, write arrays, index and fitted PCA."""
    with_poster = table[table["poster"].notna()].reset_index(drop=True)
    if with_poster.empty:
        raise MovieGenreError("no movie in the prepared table has a poster")
    rgb, colour = decode_all(list(with_poster["poster"]), settings["height"], settings["width"], settings["workers"])
    grey = to_grey(rgb)
    train_rows = np.flatnonzero((with_poster["split"] == "train").to_numpy())
    pca = fit_pca(grey, train_rows, settings["pca_components"], seed)
    components = pca_transform(pca, grey)
    log.info(
        "PCA: %d components explain %.1f%% of train pixel variance",
        pca.n_components_,
        100 * pca.explained_variance_ratio_.sum(),
    )
    with atomic_dir(out_dir) as tmp:
        with_poster[["id", "split"]].to_csv(tmp / INDEX, index=False)
        np.save(tmp / GREY, grey)
        np.save(tmp / RGB, rgb)
        np.save(tmp / PCA_FEATURES, components)
        np.save(tmp / COLOUR, colour)
        joblib.dump(pca, tmp / PCA_MODEL)
    return {"posters": len(with_poster), "grey": grey.shape, "pca": components.shape, "colour": colour.shape}


def load_array(feature_dir: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = feature_dir / name
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro featurize_images`)")
    return np.load(path, mmap_mode="r" if mmap else None)


def image_feature_matrix(feature_dir: Path, features: str) -> np.ndarray:
    """The ExtraTrees input: PCA components, plus colour statistics for 'pca+color'."""
    parts = [load_array(feature_dir, PCA_FEATURES, mmap=False)]
    if features == "pca+color":
        parts.append(load_array(feature_dir, COLOUR, mmap=False))
    return np.hstack(parts)


def fit_pca(grey: np.ndarray, train_rows: np.ndarray, components: int, seed: int) -> PCA:
    """PCA of flattened greyscale pixels in [0, 1], fitted on the train rows only."""
    flat = _flatten(grey[train_rows])
    components = min(components, *flat.shape)
    pca = PCA(n_components=components, svd_solver="randomized", random_state=seed)
    return pca.fit(flat)


def pca_transform(pca: PCA, grey: np.ndarray, batch: int = 1024) -> np.ndarray:
    parts = [pca.transform(_flatten(grey[i : i + batch])) for i in range(0, len(grey), batch)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, pca.n_components_), np.float32)


def _flatten(grey: np.ndarray) -> np.ndarray:
    return grey.reshape(len(grey), -1).astype(np.float32) / 255.0


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """Fixed (unfitted) colour and texture statistics per poster, float32 (n, 81).

    Genre lives in palette and contrast as much as in layout: horror is dark, animation is
    saturated, drama is muted. Hue histogram weighted by saturation (12), saturation (4) and
    value (8) histograms, mean colour of a 3x3 grid (27), grey mean/std/percentiles (5),
    colourfulness (1), edge density overall and per grid cell (1 + 9), RGB channel
    covariance (6), HSV means and spreads (6), and shares of dark and bright pixels (2).
    """
    x = rgb.astype(np.float32) / 255.0
    n = len(x)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    cmax, cmin = x.max(axis=-1), x.min(axis=-1)
    delta = cmax - cmin
    sat = np.where(cmax > 0, delta / np.maximum(cmax, 1e-6), 0.0)
    hue = _hue(r, g, b, cmax, delta)
    grey = to_grey(rgb).astype(np.float32) / 255.0

    flat_h, flat_s, flat_v = hue.reshape(n, -1), sat.reshape(n, -1), cmax.reshape(n, -1)
    features = [
        _histogram(flat_h, 12, weights=flat_s),
        _histogram(flat_s, 4),
        _histogram(flat_v, 8),
        _grid_means(x, 3).reshape(n, -1),
        np.stack(
            [grey.mean((1, 2)), grey.std((1, 2)), *np.percentile(grey.reshape(n, -1), [10, 50, 90], axis=1)],
            axis=1,
        ),
        _colourfulness(r, g, b)[:, None],
    ]
    edges = _edge_magnitude(grey)
    features.append(edges.mean((1, 2))[:, None])
    features.append(_grid_means(edges[..., None], 3).reshape(n, -1))
    centred = x.reshape(n, -1, 3) - x.reshape(n, -1, 3).mean(1, keepdims=True)
    cov = np.einsum("npi,npj->nij", centred, centred) / centred.shape[1]
    features.append(cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]])
    features.append(
        np.stack(
            [
                flat_s.mean(1),
                flat_s.std(1),
                flat_v.mean(1),
                flat_v.std(1),
                np.sin(2 * np.pi * flat_h).mean(1),
                np.cos(2 * np.pi * flat_h).mean(1),
            ],
            axis=1,
        )
    )
    features.append(np.stack([(flat_v < 0.15).mean(1), (flat_v > 0.85).mean(1)], axis=1))
    return np.concatenate(features, axis=1).astype(np.float32)


def _hue(r: np.ndarray, g: np.ndarray, b: np.ndarray, cmax: np.ndarray, delta: np.ndarray) -> np.ndarray:
    safe = np.maximum(delta, 1e-6)
    hue = np.where(cmax == r, ((g - b) / safe) % 6, np.where(cmax == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return np.where(delta > 0, hue / 6.0, 0.0)


def _histogram(values: np.ndarray, bins: int, weights: np.ndarray | None = None) -> np.ndarray:
    index = np.minimum((values * bins).astype(np.int64), bins - 1)
    weights = np.ones_like(values) if weights is None else weights
    offsets = (np.arange(len(values)) * bins)[:, None]
    counts = np.bincount((index + offsets).ravel(), weights=weights.ravel(), minlength=len(values) * bins)
    hist = counts.reshape(len(values), bins).astype(np.float32)
    return hist / np.maximum(hist.sum(1, keepdims=True), 1e-6)


def _grid_means(x: np.ndarray, cells: int) -> np.ndarray:
    _, h, w, _ = x.shape
    hs, ws = np.array_split(np.arange(h), cells), np.array_split(np.arange(w), cells)
    return np.stack([x[:, hi[0] : hi[-1] + 1, wi[0] : wi[-1] + 1].mean((1, 2)) for hi in hs for wi in ws], 1)


def _colourfulness(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    rg, yb = r - g, 0.5 * (r + g) - b
    n = len(r)
    rg, yb = rg.reshape(n, -1), yb.reshape(n, -1)
    return np.sqrt(rg.std(1) ** 2 + yb.std(1) ** 2) + 0.3 * np.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)


def _edge_magnitude(grey: np.ndarray) -> np.ndarray:
    gy = np.zeros_like(grey)
    gx = np.zeros_like(grey)
    gy[:, 1:-1] = grey[:, 2:] - grey[:, :-2]
    gx[:, :, 1:-1] = grey[:, :, 2:] - grey[:, :, :-2]
    return np.sqrt(gx**2 + gy**2)
