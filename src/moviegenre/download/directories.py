"""Copy a directory source as an archive is unpacked: regular files only, within the same limits.

A directory comes from wherever ``data.source`` points, and its entries are not all files: a
link to ``/dev/zero`` reads forever, opening a fifo blocks, a link to ``..`` nests without
end. So the walk never follows a link blindly. A link is resolved and must land inside the
source, on a regular file or on a folder that is not one of its own ancestors; fifos,
sockets and devices are refused by name. Every member counts against ``data.max_members``
and every byte copied against ``data.max_extract_gb``, as the bytes arrive, so a file that
grows while it is read is stopped too.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import NoReturn

from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError
from moviegenre.download.archives import Budget, Limits, check_name

BLOCK = 1 << 20
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_KINDS = (
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def copy_directory(source: Path, dest: Path, *, limits: Limits, name: str | None = None, progress: bool = True) -> int:
    """Copy the regular files and folders under ``source`` into ``dest`` (created); return the member count.

    ``name`` is how errors call the source. Anything that is not a regular file or a folder
    inside the source, or that crosses a limit, raises with one line naming the member;
    whatever was written to ``dest`` by then is the caller's to discard.
    """
    shown = name or str(source)
    root = source.resolve()
    budget = Budget(shown, limits, packed=None)
    dest.mkdir()
    skip = _identity(dest)  # a source that holds the output must not copy the copy
    # (folder to read, its path in the source, the folders it is inside): a stack, not recursion.
    todo = [(root, PurePosixPath(), frozenset({_identity(root)}))]
    count = 0
    with tqdm(desc=f"copy {source.name}", unit=" files", disable=not progress) as bar:
        while todo:
            folder, where, ancestors = todo.pop()
            for entry in _entries(shown, folder, where):
                member = where / entry.name
                check_name(shown, member.as_posix())
                real, info = _follow(shown, root, Path(entry.path), member, entry.is_symlink())
                if stat.S_ISDIR(info.st_mode):
                    identity = (info.st_dev, info.st_ino)
                    if identity == skip:
                        continue
                    if identity in ancestors:
                        link = f"link to {os.readlink(entry.path)!r}" if entry.is_symlink() else "folder"
                        _refuse(shown, member, f"{link} makes a loop")
                    budget.admit(member.as_posix(), 0)
                    try:
                        (dest / member).mkdir()
                    except OSError as exc:  # a path too long for the copy, a full disk
                        _cannot_copy(shown, dest, member, exc)
                    todo.append((real, member, ancestors | {identity}))
                elif stat.S_ISREG(info.st_mode):
                    budget.admit(member.as_posix(), info.st_size)
                    _copy_file(shown, real, dest, member, info.st_size, budget)
                    bar.update()
                else:
                    kind = next((text for test, text in _KINDS if test(info.st_mode)), "not a file or a folder")
                    _refuse(shown, member, f"{kind}, not a regular file")
                count += 1
    return count


def _identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def _refuse(shown: str, member: PurePosixPath, why: str) -> NoReturn:
    raise MovieGenreError(f"{shown}: refusing member {member.as_posix()!r}: {why}")


def _cannot_copy(shown: str, dest: Path, member: PurePosixPath, exc: OSError) -> NoReturn:
    if exc.errno in _DISK_FULL:
        raise MovieGenreError(f"{shown}: cannot copy into {dest.parent}: {exc.strerror}") from exc
    raise MovieGenreError(f"{shown}: cannot copy member {member.as_posix()!r}: {exc.strerror or exc}") from exc


def _entries(shown: str, folder: Path, where: PurePosixPath) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise MovieGenreError(f"{shown}: cannot read folder '{where.as_posix()}': {exc.strerror}") from exc


def _follow(shown: str, root: Path, path: Path, member: PurePosixPath, is_link: bool) -> tuple[Path, os.stat_result]:
    """The real path of an entry and what is there; a link must resolve to somewhere inside ``root``."""
    real = path
    if is_link:
        target = os.readlink(path)
        try:
            real = path.resolve(strict=True)
        except RuntimeError:  # Python 3.11 and 3.12 report a loop of links this way
            _refuse(shown, member, f"link to {target!r} makes a loop")
        except OSError as exc:
            why = "makes a loop" if exc.errno == errno.ELOOP else "points at nothing"
            _refuse(shown, member, f"link to {target!r} {why}")
        if not real.is_relative_to(root):
            _refuse(shown, member, f"link to {target!r} points outside the source")
    try:
        return real, os.stat(real, follow_symlinks=False)
    except OSError as exc:
        raise MovieGenreError(f"{shown}: cannot read member {member.as_posix()!r}: {exc.strerror}") from exc


def _copy_file(shown: str, real: Path, dest: Path, member: PurePosixPath, size: int, budget: Budget) -> None:
    """Copy one regular file, counting every byte past the ``size`` it was admitted with.

    O_NONBLOCK: a file swapped for a fifo since it was looked at must not block the open;
    then it is refused as not a regular file.
    """
    copied = 0
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        _cannot_copy(shown, dest, member, exc)
    try:
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                _refuse(shown, member, "changed into something that is not a regular file")
            with (dest / member).open("xb") as sink:
                while block := src.read(BLOCK):
                    sink.write(block)
                    copied += len(block)
                    if copied > size:
                        budget.grow(member.as_posix(), min(len(block), copied - size))
    except OSError as exc:
        _cannot_copy(shown, dest, member, exc)
