"""Colour and texture statistics of posters: fixed functions of the pixels, nothing fitted."""

from __future__ import annotations

import numpy as np

from moviegenre.data.posters import to_grey

N_COLOUR_FEATURES = 81


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
