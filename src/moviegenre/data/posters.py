"""Decode posters: one function used by prepare (validation), featurize_images and predict.

JPEG draft mode lets libjpeg decode straight at 1/2, 1/4 or 1/8 scale, which is most of the
speed of featurize_images; the final resize is then a small one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from moviegenre.core.errors import MovieGenreError

Image.MAX_IMAGE_PIXELS = 60_000_000  # a poster larger than this is not a poster

# Every answer of poster_problem, in the order metrics/data.json lists them.
POSTER_PROBLEMS = ("missing", "zero_bytes", "not_an_image", "truncated", "too_large")


def poster_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a usable poster (one of ``POSTER_PROBLEMS``), or None.

    More pixels than ``MAX_IMAGE_PIXELS`` is 'too_large' (PIL refuses it before decoding,
    and it is no poster), not 'truncated': the file may be perfectly whole.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "zero_bytes"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("L", (32, 32))
                image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too_large"
    except UnidentifiedImageError:
        return "not_an_image"
    except (OSError, SyntaxError, ValueError):
        return "truncated"
    return None


def load_rgb(path: str | Path, height: int, width: int) -> np.ndarray:
    """The poster as a uint8 array of shape (height, width, 3), stretched to that size.

    Posters share an aspect ratio close to 2:3, so a stretch keeps all of the artwork
    (no crop) at negligible distortion.
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (width, height))
            rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MovieGenreError(f"{path}: not a readable image ({exc})") from exc


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (the weights of PIL's convert("L")), for uint8 arrays of any batch shape."""
    weights = np.array([299, 587, 114], dtype=np.uint32)
    return ((rgb.astype(np.uint32) @ weights + 500) // 1000).astype(np.uint8)
