"""A feature directory on disk: its row index, its arrays and the fingerprint of its fitted state.

Every feature set writes ``index.csv`` (id and split of each row, in row order), one file
per array (``.npy`` dense, memory-mappable; ``.npz`` sparse CSR) and the fitted state that
made each array (a PCA, a vocabulary). A branch records the fingerprint of the state behind
the arrays it reads in its model spec, so a model is never silently applied to features
fitted differently. The fingerprint is taken from the state files alone, which the
branch's stage depends on, so changing one array's settings does not touch the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from moviegenre.core.errors import MovieGenreError

INDEX = "index.csv"


def load_index(feature_dir: Path) -> pd.DataFrame:
    path = feature_dir / INDEX
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found (run `dvc repro` for the featurize stages)")
    return pd.read_csv(path, dtype={"id": str, "split": str}, keep_default_na=False)


def write_arrays(directory: Path, arrays: Mapping[str, Any]) -> None:
    """Dense arrays as ``<name>.npy``, sparse matrices as ``<name>.npz`` (CSR)."""
    for name, array in arrays.items():
        if sp.issparse(array):
            sp.save_npz(directory / f"{name}.npz", sp.csr_matrix(array), compressed=True)
        else:
            np.save(directory / f"{name}.npy", np.ascontiguousarray(array))


def load_array(feature_dir: Path, name: str, mmap: bool = True) -> Any:
    """One array of a feature directory; dense ones memory-mapped unless ``mmap`` is false."""
    dense, sparse = feature_dir / f"{name}.npy", feature_dir / f"{name}.npz"
    if dense.is_file():
        return np.load(dense, mmap_mode="r" if mmap else None)
    if sparse.is_file():
        return sp.load_npz(sparse).tocsr()
    raise MovieGenreError(f"{dense}: not found (run `dvc repro` for the stage that writes {feature_dir})")


def fingerprint(feature_dir: Path, state_files: Iterable[str]) -> str:
    """sha256 (first 16 hex digits) of the named fitted-state files of a feature directory."""
    digest = hashlib.sha256()
    for name in sorted(state_files):
        path = feature_dir / name
        if not path.is_file():
            raise MovieGenreError(f"{path}: not found (run `dvc repro` for the stage that writes {feature_dir})")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
