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
from moviegenre.core.files import atomic_dir, json_text

INDEX = "index.csv"
ENCODER_STATE = "encoder.json"  # a pretrained encoder's feature set: what made its embeddings


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


def write_embedding_set(out_dir: Path, rows: pd.DataFrame, embeddings: np.ndarray, state: Mapping[str, Any]) -> dict:
    """A pretrained encoder's feature set, all of it or nothing: ``index.csv`` (the id and split of
    ``rows``), ``embeddings.npy`` and the encoder's state as ``encoder.json``. Returns the shapes."""
    with atomic_dir(out_dir) as tmp:
        rows[["id", "split"]].to_csv(tmp / INDEX, index=False)
        write_arrays(tmp, {"embeddings": embeddings})
        (tmp / ENCODER_STATE).write_text(json_text(dict(state)))
    return {"embeddings": embeddings.shape}


class NpyWriter:
    """A ``.npy`` file of known shape written a block of rows at a time, byte for byte what
    ``np.save`` writes for the whole array, so a stage can stream an array larger than it wants
    to hold (featurize_images' RGB posters). Short of its rows at close, it raises."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115  closed by close() / __exit__
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._file, header)

    def write(self, block: np.ndarray) -> None:
        if block.shape[1:] != self.shape[1:] or block.dtype != self.dtype or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: block {block.dtype}{block.shape} does not fit {self.dtype}{self.shape}")
        self._file.write(np.ascontiguousarray(block).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self._file.close()
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.path}: {self.rows} of {self.shape[0]} rows written")

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # the caller's error wins; the half-written file is the caller's temporary directory's
            self._file.close()


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
