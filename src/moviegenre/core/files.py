"""Write outputs through a temporary path and move them into place only when complete.

A stage that fails half way must not leave a file that looks finished: DVC would not
notice, and the next stage would read it. Temporaries are siblings named
``.<target>.<random>.tmp``; the ones a killed run left behind are swept by the next write
of the same target. Files end up 0644 and folders 0755 (less the umask), as ``open`` and
``mkdir`` would make them, not the 0600/0700 of ``tempfile``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moviegenre.core.errors import MovieGenreError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sweep_stale(target: Path) -> None:
    """Remove temporaries of ``target`` left by a run that was killed before its cleanup."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path of ``target``; rename it onto ``target`` on success.

    ``mode`` defaults to the mode of the file being replaced, else 0666 less the umask.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(target)
    if mode is None:
        mode = target.stat().st_mode & 0o777 if target.is_file() else 0o666 & ~_umask()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``target`` whole on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def json_text(payload: Any) -> str:
    """Indented JSON with a final newline: the one format of every small file the pipeline writes."""
    return json.dumps(payload, indent=2) + "\n"


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(payload))


def read_json(path: str | Path, fix: str) -> Any:
    """The JSON document in ``path``, strictly: NaN and Infinity are refused, as is deep nesting.

    A missing or malformed file is one line naming it and ``fix`` (what to run).
    """
    path = Path(path)
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found; {fix}")
    try:
        return json.loads(path.read_bytes(), parse_constant=_refuse_constant)
    except RecursionError:
        raise MovieGenreError(f"{path}: not valid JSON (nested too deeply); {fix}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise MovieGenreError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:200]}); {fix}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
