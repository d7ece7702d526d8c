"""``index.csv`` beside every feature set: the id and split of each row, in row order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from moviegenre.errors import MovieGenreError

INDEX = "index.csv"


def load_index(feature_dir: Path) -> pd.DataFrame:
    path = feature_dir / INDEX
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro` for the featurize stages)")
    return pd.read_csv(path, dtype={"id": str, "split": str}, keep_default_na=False)
