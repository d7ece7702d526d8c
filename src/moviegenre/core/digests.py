"""Digests of files: the one place the project hashes a file's bytes, and the sha256 digests of
the files a saved artifact consists of, recorded when it is written and checked when it is read.

A model directory that DVC restores from a damaged cache, a file truncated by a full disk or
one copied over from another directory loads without complaint and gives wrong numbers; the
digest recorded beside it when it was written catches each of these before anything is read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_BLOCK = 1 << 20


def file_digest(path: Path, algorithm: Literal["sha256", "md5"] = "sha256", progress: bool = False) -> str:
    """Hex digest of a file, read in blocks (archives and checkpoints are far larger than a
    comfortable read); ``progress`` shows a byte bar for the large ones a user waits on. md5 is
    DVC's own hash, used only to compare with what dvc.lock records, never as a check of trust."""
    digest = hashlib.md5(usedforsecurity=False) if algorithm == "md5" else hashlib.sha256()
    with (
        Path(path).open("rb") as stream,
        tqdm(
            total=Path(path).stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"{algorithm} {Path(path).name}",
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        while block := stream.read(_BLOCK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def file_digests(directory: Path, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Every file under ``directory`` (relative POSIX path -> sha256), ``exclude`` left out."""
    skipped = set(exclude)
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in skipped
    }


def digests_problem(value: object) -> str | None:
    """Why ``value`` is not a mapping of relative file names to sha256 hex digests, or None."""
    if not isinstance(value, dict) or not value:
        return "no file digests"
    for name, digest in value.items():
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in Path(name).parts:
            return f"a bad file name {name!r}"
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            return f"a bad sha256 for {name}"
    return None


def check_digests(directory: Path, digests: Mapping[str, str], recorded_in: Path, fix: str) -> None:
    """Raise one line naming the first file of ``directory`` that is missing or differs from ``digests``."""
    for name, expected in digests.items():
        path = directory / name
        if not path.is_file():
            raise MovieGenreError(f"{path}: missing (listed in {recorded_in}); {fix}")
        if sha256_file(path) != expected:
            raise MovieGenreError(f"{path}: corrupt or replaced (its sha256 differs from {recorded_in}); {fix}")
