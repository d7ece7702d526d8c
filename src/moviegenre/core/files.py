"""Write outputs through a temporary path and move them into place only when complete.

A stage that fails half way must not leave a file that looks finished: DVC would not
notice, and the next stage would read it. Temporaries are siblings named
``.<target>.<random>.tmp``; the ones a killed run left behind are swept by the next write
of the same target. Files end up 0644 and folders 0755 (less the umask), as ``open`` and
``mkdir`` would make them, not the 0600/0700 of ``tempfile``.

A write that fails (a full disk, a read-only file system) is one ``MovieGenreError`` naming the
target, with nothing left behind: the caller's one-line error contract holds for the disk too.
A path the user names as an output is checked first (``check_output``): only a new or a regular
file is replaced, never a symbolic link, a device or a FIFO, whose replacement would break what
they stand for (``/dev/null``) or write somewhere other than the name says.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.core.errors import MovieGenreError

# errno values that mean "this write cannot succeed", even when the error names no file
# (``write()`` on a full disk raises without one)
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def output_problem(path: Path, option: str) -> str | None:
    """Why ``path``, given as ``option``, must not be replaced by a command's output file, or None.

    ``lstat``: a symbolic link is judged itself, not by what it points to.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return f"is a symbolic link; {option} is written only as a regular file, never through a link"
    if stat.S_ISDIR(mode):
        return f"is a directory; give {option} a file name"
    if not stat.S_ISREG(mode):
        return f"is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}; {option} replaces only a regular file"
    return None


def check_output(path: Path, option: str, *, make_parents: bool = False) -> None:
    """Refuse, before any work, an output the command could not or must not write.

    The folder is probed with a real file, as permissions alone do not tell (a read-only
    mount, ``/proc``). With ``make_parents`` the nearest existing ancestor is probed, since the
    write creates the rest.
    """
    problem = output_problem(path, option)
    if problem:
        raise MovieGenreError(f"{path}: {problem}")
    folder = path.parent
    while make_parents and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise MovieGenreError(f"{path.parent}: no such directory for {option}")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise MovieGenreError(f"{folder}: cannot write {option} there ({exc.strerror or exc})") from exc


def os_error_text(exc: OSError) -> str:
    """One line for an ``OSError``: the file it names, then what went wrong."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{os.fsdecode(exc.filename)}: {reason}" if isinstance(exc.filename, str | bytes) else reason


def _concerns(exc: OSError, *paths: Path) -> bool:
    """Whether ``exc`` is about writing ``paths`` (or a file inside them): it names one of them, or
    names no file and is a write failure. An error reading some other file passes through as it is."""
    named = exc.filename
    if not isinstance(named, str | bytes):
        return exc.errno in WRITE_FAILURES
    where = os.path.abspath(os.fsdecode(named))
    return any(where == str(p) or where.startswith(str(p) + os.sep) for p in (x.absolute() for x in paths))


def _write_error(target: Path, exc: OSError) -> MovieGenreError:
    return MovieGenreError(f"{target}: cannot write it ({exc.strerror or exc}); nothing was written")


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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(target)
        if mode is None:
            mode = target.stat().st_mode & 0o777 if target.is_file() else 0o666 & ~_umask()
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        if not _concerns(exc, tmp, target):
            raise
        raise _write_error(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``target`` whole on success."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _write_error(target, exc) from exc
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(tmp, target)
    except OSError as exc:
        if not _concerns(exc, tmp, target):
            raise
        raise _write_error(target, exc) from exc
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


NPY_MAGIC = b"\x93NUMPY"


def read_npy(path: str | Path, fix: str, *, mmap: bool = False) -> np.ndarray:
    """The array in the ``.npy`` file ``path``, memory-mapped read-only if ``mmap``.

    Never unpickled: a file that is not a ``.npy`` array (a pickle, a zip of arrays) or holds
    Python objects is one line naming it and ``fix``, since loading an object array runs
    whatever code its pickle names. The caller checks the dtype and shape it expects.
    """
    path = Path(path)
    if not path.is_file():
        raise MovieGenreError(f"{path}: not found; {fix}")
    try:
        with path.open("rb") as stream:
            if stream.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise ValueError("not a .npy file")
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # a pickle, an object array, a truncated header
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise MovieGenreError(f"{path}: not a readable numpy array ({reason}); {fix}") from exc
    return array
