"""Branch probability files: id, split, then one column per genre in vocabulary order.

The ensemble and ``predict`` read these; ``read`` checks that columns are what the
vocabulary says so that a stale file fails loudly instead of mixing genres up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_path


def write(path: Path, ids: pd.Series, split: pd.Series | np.ndarray, proba: np.ndarray, genres: list[str]) -> None:
    if proba.shape != (len(ids), len(genres)):
        raise ValueError(f"probabilities of shape {proba.shape} for {len(ids)} movies and {len(genres)} genres")
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=genres)
    frame.insert(0, "split", np.asarray(split))
    frame.insert(0, "id", np.asarray(ids))
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read(path: Path, genres: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro` for that branch)")
    frame = pd.read_parquet(path)
    expected = ["id", "split", *genres]
    if list(frame.columns) != expected:
        raise MovieGenreError(
            f"{path}: columns {list(frame.columns)[:6]}... do not match the genre vocabulary "
            f"{genres[:4]}... (rerun `dvc repro`)"
        )
    values = frame[genres].to_numpy()
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise MovieGenreError(f"{path}: probabilities outside [0, 1] or not finite")
    return frame
