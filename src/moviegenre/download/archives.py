"""Unpack tar and zip archives whole or not at all: hostile members refused, damage detected.

Archives come from wherever ``data.source`` points, so a member named ``../x``, ``/etc/x``,
a link out of the tree or a device file is an attack or a broken archive: both stop the run.

Without ``data.sha256`` nothing else vouches for the bytes, and Python's readers are lenient:
``tarfile`` takes a damaged header for the end of the archive, and gzip's CRC is only
checked when the stream is read to its end. So every compressed stream is read to its end,
a tar must close with its end-of-archive blocks and nothing but zeros after them, and every
zip member is read whole (its CRC checked); anything less is a truncated or corrupt archive.
Limits on size, member count and compression ratio stop an archive bomb before it fills
the disk.
"""

from __future__ import annotations

import errno
import logging
import lzma
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError
from moviegenre.download.settings import DataSettings

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # a tar ends with (at least) two zero blocks
_MAGIC_MODES = ((b"\x1f\x8b", "r:gz"), (b"BZh", "r:bz2"), (b"\xfd7zXZ\x00", "r:xz"))
# What damaged input makes the readers raise (bz2 raises OSError, lzma its own error).
_DAMAGE = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class CorruptArchive(MovieGenreError):
    """The archive's bytes are damaged: a cached download of it is worth deleting."""


@dataclass(frozen=True)
class Limits:
    """What one archive may unpack to (params.yaml's data section; ``predict --dataset``'s options).

    MM-IMDb is ~52k members (25,959 movies: a .json and a .jpeg each) and about 8 GB of
    posters, which JPEG has already compressed (ratio ~1); a bomb of zeros compresses ~1000x.
    """

    max_extract_gb: float
    max_members: int
    max_compression_ratio: float

    @classmethod
    def from_params(cls, data: DataSettings) -> Limits:
        return cls(data.max_extract_gb, data.max_members, data.max_compression_ratio)


class Budget:
    """Counts members and unpacked bytes, refusing the member that would cross a limit.

    Sizes come from the headers before a member is written (tarfile and zipfile never write
    more than the declared size), so a bomb is stopped before it lands on the disk. A
    directory source has no packed size, so no compression ratio: ``packed`` is None.
    """

    def __init__(self, shown: str, limits: Limits, packed: int | None) -> None:
        self.shown = shown
        self.limits = limits
        self.packed = max(packed, 1) if packed is not None else None
        self.members = 0
        self.unpacked = 0

    def admit(self, member: str, size: int) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            self._refuse(member, f"more than data.max_members={self.limits.max_members} members")
        self.grow(member, size)

    def grow(self, member: str, size: int) -> None:
        """Count ``size`` more unpacked bytes of ``member``."""
        self.unpacked += max(size, 0)
        limits = self.limits
        if self.unpacked > limits.max_extract_gb * 1e9:
            self._refuse(
                member, f"unpacked size {self.unpacked:,} bytes is over data.max_extract_gb={limits.max_extract_gb}"
            )
        if self.packed is not None and self.unpacked > limits.max_compression_ratio * self.packed:
            self._refuse(
                member,
                f"unpacked size {self.unpacked:,} bytes is over data.max_compression_ratio="
                f"{limits.max_compression_ratio} times the archive's {self.packed:,} bytes",
            )

    def _refuse(self, member: str, why: str) -> None:
        raise MovieGenreError(f"{self.shown}: refusing member {member!r}: {why} (raise the limit if you trust it)")


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path, *, limits: Limits, name: str | None = None, progress: bool = True) -> int:
    """Extract ``archive`` into the existing directory ``dest``; return the number of members.

    ``name`` is how errors call the archive (the user's ``data.source`` rather than a cache
    path). An archive that is damaged, empty, hostile or over a limit raises with one line;
    whatever was written to ``dest`` by then is the caller's to discard.
    """
    shown = name or str(archive)
    budget = Budget(shown, limits, archive.stat().st_size)
    try:
        if archive.name.lower().endswith(".zip"):
            members = _extract_zip(archive, dest, shown, budget, progress)
        else:
            members = _extract_tar(archive, dest, shown, budget, progress)
    except MovieGenreError:
        raise
    except tarfile.FilterError as exc:
        raise MovieGenreError(f"{shown}: refusing member {exc.tarinfo.name!r}: {_one_line(exc)}") from exc
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise MovieGenreError(f"{shown}: cannot unpack into {dest.parent}: {exc.strerror}") from exc
        raise CorruptArchive(f"{shown}: truncated or corrupt archive ({_one_line(exc)})") from exc
    except _DAMAGE as exc:
        raise CorruptArchive(f"{shown}: truncated or corrupt archive ({_one_line(exc)})") from exc
    if members == 0:
        raise MovieGenreError(f"{shown}: empty archive (no members)")
    return members


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_name(shown: str, name: str) -> PurePosixPath:
    """A member's path, refused when absolute, climbing out with '..', or not UTF-8.

    Names are decoded with surrogateescape (tarfile, os.scandir): bytes that are not UTF-8
    would pass the unpacking and fail wherever the name is written as text, so they stop here.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise MovieGenreError(f"{shown}: refusing member '{_undecoded(name)}': name is not UTF-8") from None
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise MovieGenreError(f"{shown}: refusing member {name!r}: absolute path")
    if ".." in path.parts:
        raise MovieGenreError(f"{shown}: refusing member {name!r}: '..' in path")
    return path


def _undecoded(name: str) -> str:
    """A name as its bytes were, those that are not UTF-8 as \\xNN."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = name.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _tar_mode(archive: Path) -> str:
    """Choose the decompressor from the first bytes: a clear error beats 'r:*' trying them all."""
    with archive.open("rb") as fh:
        head = fh.read(8)
    return next((mode for magic, mode in _MAGIC_MODES if head.startswith(magic)), "r:")


def _extract_tar(archive: Path, dest: Path, shown: str, budget: Budget, progress: bool) -> int:
    files: set[PurePosixPath] = set()
    count = 0
    with tarfile.open(archive, mode=_tar_mode(archive)) as tar:  # type: ignore[call-overload]  # a mode read off the file
        for member in tqdm(tar, desc=f"unpack {archive.name}", unit=" files", disable=not progress):
            path = _check_tar_member(shown, member, files)
            budget.admit(member.name, member.size if member.isfile() else 0)
            tar.extract(member, dest, filter=_default_modes)
            if member.isfile():
                files.add(path)
            count += 1
        _check_tar_end(tar)
    return count


def _check_tar_member(shown: str, member: tarfile.TarInfo, files: set[PurePosixPath]) -> PurePosixPath:
    """Refuse what ``tar.extract`` must never see; a hard link must name an earlier file."""
    path = check_name(shown, member.name)
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise MovieGenreError(f"{shown}: refusing member {member.name!r}: device or fifo")
    if member.issym() or member.islnk():
        base = path.parent if member.issym() else PurePosixPath()
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or ".." in (base / link).parts:
            raise MovieGenreError(
                f"{shown}: refusing member {member.name!r}: link to {member.linkname!r} points outside the archive"
            )
        if member.islnk() and link not in files:
            raise MovieGenreError(
                f"{shown}: refusing member {member.name!r}: hard link to {member.linkname!r}, "
                "which is not an earlier file of the archive"
            )
    return path


def _default_modes(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """tarfile's 'data' filter, and the modes a new file or folder gets here (0644/0755 less the umask)."""
    return tarfile.data_filter(member, path).replace(mode=None, deep=False)  # type: ignore[arg-type]  # None: the default modes


def _check_tar_end(tar: tarfile.TarFile) -> None:
    """After the last member: two zero blocks at least, then only zeros, read to the stream's end.

    ``tarfile`` stops quietly at a damaged header, at a cut on a member boundary and at a
    zero block in the middle; reading the rest tells those apart from a real end, and
    reading a compressed stream to its end makes gzip check its CRC and length.
    """
    end = tar.offset
    stream = tar.fileobj
    stream.seek(end)
    zeros = 0
    while block := stream.read(1 << 20):
        stripped = block.lstrip(b"\0")
        if stripped:
            at = end + zeros + len(block) - len(stripped)
            raise tarfile.ReadError(f"unreadable data at byte {at:,} of the tar stream, after {end:,} bytes of members")
        zeros += len(block)
    if zeros < END_OF_ARCHIVE:
        raise tarfile.ReadError(f"no end-of-archive marker after the last member (at byte {end:,}): cut short")


def _extract_zip(archive: Path, dest: Path, shown: str, budget: Budget, progress: bool) -> int:
    """The central directory is checked (and every limit) before anything is written."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_zip_member(shown, info)
            budget.admit(info.filename, info.file_size)
        for info in tqdm(infos, desc=f"unpack {archive.name}", unit=" files", disable=not progress):
            zf.extract(info, dest)  # reads the member to its end, where zipfile checks the CRC
    return len(infos)


def _check_zip_member(shown: str, info: zipfile.ZipInfo) -> None:
    check_name(shown, info.filename)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise MovieGenreError(f"{shown}: refusing member {info.filename!r}: symbolic link")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        raise MovieGenreError(f"{shown}: refusing member {info.filename!r}: device or fifo")
