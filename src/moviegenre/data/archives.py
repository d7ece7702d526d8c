"""Unpack tar and zip archives, refusing members that could write outside the target.

Archives come from wherever ``data.source`` points, so a member named ``../x``, ``/etc/x``,
a link out of the tree or a device file is an attack or a broken archive: both stop the run.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path, progress: bool = True) -> None:
    """Extract ``archive`` into the existing directory ``dest``."""
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, dest, progress)
        else:
            _extract_tar(archive, dest, progress)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, MovieGenreError):
            raise
        raise MovieGenreError(f"{archive}: truncated or malformed archive ({exc})") from exc


def _check_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise MovieGenreError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in path.parts:
        raise MovieGenreError(f"{archive}: refusing member {name!r}: '..' in path")
    return path


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    with tarfile.open(archive, mode="r:*") as tar:
        for member in tqdm(tar, desc=f"unpack {archive.name}", unit=" files", disable=not progress):
            path = _check_name(archive, member.name)
            if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
                raise MovieGenreError(f"{archive}: refusing member {member.name!r}: device or fifo")
            if member.issym() or member.islnk():
                base = path.parent if member.issym() else PurePosixPath()
                link = PurePosixPath(member.linkname)
                if link.is_absolute() or ".." in (base / link).parts:
                    raise MovieGenreError(
                        f"{archive}: refusing member {member.name!r}: link to {member.linkname!r} "
                        "points outside the archive"
                    )
            tar.extract(member, dest, filter="data")


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in tqdm(zf.infolist(), desc=f"unpack {archive.name}", unit=" files", disable=not progress):
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise MovieGenreError(f"{archive}: refusing member {info.filename!r}: symbolic link")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                raise MovieGenreError(f"{archive}: refusing member {info.filename!r}: device or fifo")
            zf.extract(info, dest)
