"""The prepared table as every later stage reads it: movies, their split and the genre vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import read_json

TABLE_NAME = "movies.parquet"
GENRES_NAME = "genres.json"


def label_matrix(genre_lists: pd.Series | list, vocabulary: list[str]) -> np.ndarray:
    """Multi-hot uint8 matrix, one column per genre of ``vocabulary`` in its order."""
    column = {g: i for i, g in enumerate(vocabulary)}
    labels = np.zeros((len(genre_lists), len(vocabulary)), dtype=np.uint8)
    for row, movie_genres in enumerate(genre_lists):
        for g in movie_genres:
            if g in column:
                labels[row, column[g]] = 1
    return labels


def load_genres(prepared_dir: Path) -> list[str]:
    """The genre vocabulary alone (what prediction needs), without reading the table."""
    path = prepared_dir / GENRES_NAME
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro prepare`)")
    fix = f"run `dvc checkout --force {prepared_dir}` (or `dvc repro prepare`)"
    data = read_json(path, fix)
    genres = data.get("genres") if isinstance(data, dict) else None
    if not isinstance(genres, list) or not genres or not all(isinstance(g, str) and g for g in genres):
        raise MovieGenreError(f"{path}: 'genres' is not a list of genre names; {fix}")
    return genres


def load_prepared(prepared_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """The prepared table and the genre vocabulary, with a clear error when not built."""
    table_path = prepared_dir / TABLE_NAME
    genres = load_genres(prepared_dir)
    if not table_path.is_file():
        raise MovieGenreError(f"{table_path}: not found (run `dvc repro prepare`)")
    table = pd.read_parquet(table_path)
    table["genres"] = table["genres"].map(list)
    return table, genres


def labels_for(ids: pd.Series | np.ndarray, table: pd.DataFrame, genres: list[str]) -> np.ndarray:
    """Multi-hot labels of the movies ``ids`` (feature rows), in that order."""
    by_id = table.set_index("id")
    ids = pd.Series(np.asarray(ids))
    missing = ids[~ids.isin(by_id.index)]
    if len(missing):
        raise MovieGenreError(
            f"feature rows for ids not in the prepared table (e.g. {missing.iloc[0]}); rerun `dvc repro`"
        )
    return label_matrix(by_id.loc[ids, "genres"].tolist(), genres)
