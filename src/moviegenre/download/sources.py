"""Turn ``data.source`` (path, file://, http(s)://, any fsspec URL) into a local file or directory.

Remote archives are cached under ``data/cache/`` (outside DVC's outputs, which DVC deletes
before a rerun) so an interrupted download resumes and a verified one is not fetched twice.
The cache file is named by a hash of the full URL (then the URL's own file name, for
people): two sources that share a file name never share, or resume, each other's bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from moviegenre.core.digests import file_digest
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import project_root
from moviegenre.download import http_client

log = logging.getLogger(__name__)


def verify_sha256(path: Path, expected: str | None, source: str) -> None:
    """Raise naming both hashes when ``path`` does not hash to ``expected``."""
    if not expected:
        return
    actual = file_digest(path, "sha256", progress=True)
    if actual.lower() != expected.lower():
        raise MovieGenreError(
            f"{source}: checksum mismatch: expected sha256 {expected.lower()}, got {actual} "
            "(a different or corrupted file; fix data.source or data.sha256)"
        )


def _scheme(source: str) -> str:
    try:
        parsed = urlparse(source)
    except ValueError as exc:  # e.g. an unclosed '[' in the host
        raise MovieGenreError(f"{source}: not a valid path or URL ({exc}); fix data.source") from exc
    # A Windows drive letter ("C:\\...") parses as a one-letter scheme: it is a path.
    return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def local_path(source: str) -> Path | None:
    """The filesystem path behind a plain path or a file:// URL; None for remote sources."""
    scheme = _scheme(source)
    if scheme == "":
        path = Path(source).expanduser()
        return path if path.is_absolute() else project_root() / path
    if scheme == "file":
        return Path(unquote(urlparse(source).path))
    return None


def fetch(
    source: str,
    sha256: str | None,
    *,
    timeout_s: float,
    retries: int,
    cache_dir: Path,
    deadline_s: float | None = None,
) -> Path:
    """Return a verified local path (archive file or directory) for ``source``."""
    path = local_path(source)
    if path is not None:
        if not path.exists():
            raise MovieGenreError(f"{source}: data source not found (expected an archive or a directory)")
        if path.is_dir():
            if sha256:
                raise MovieGenreError(f"{source}: data.sha256 applies to archives; set it to null for a directory")
            return path
        verify_sha256(path, sha256, source)
        return path

    cached = cache_path(source, cache_dir)
    _sweep_other_partials(cache_dir, cached)
    if cached.exists() and sha256:
        try:
            verify_sha256(cached, sha256, source)
            log.info("using cached %s (sha256 verified)", cached)
            return cached
        except MovieGenreError:
            log.warning("cached %s does not match data.sha256; downloading again", cached)
            http_client.discard(cached)
    if _scheme(source) in ("http", "https"):
        try:
            http_client.download(source, cached, timeout_s=timeout_s, retries=retries, deadline_s=deadline_s)
        except http_client.DownloadError as exc:
            advice = "fix data.source, or fetch the file yourself and set data.source to it"
            raise MovieGenreError(f"{exc}; {advice}") from exc
    else:
        _fetch_fsspec(source, cached)
    try:
        verify_sha256(cached, sha256, source)
    except MovieGenreError:
        http_client.discard(cached)
        raise
    return cached


def cache_path(source: str, cache_dir: Path) -> Path:
    """``<sha256 of the URL, 16 hex>-<the URL's file name>``: unique per URL, readable, suffix kept."""
    name = Path(unquote(urlparse(source).path)).name or "source"
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    return cache_dir / f"{key}-{name}"


def forget(local: Path, cache_dir: Path) -> None:
    """Delete ``local`` if it is a download in ``cache_dir`` (a damaged one must not be reused)."""
    if local.resolve().parent == cache_dir.resolve():
        log.warning("deleting the damaged download %s", local)
        http_client.discard(local)


def _sweep_other_partials(cache_dir: Path, cached: Path) -> None:
    """Partial downloads of other URLs can never be resumed into this one: free their space."""
    if not cache_dir.is_dir():
        return
    for part in cache_dir.glob("*.part"):
        if part != http_client.part_path(cached):
            log.info("removing %s, a partial download of another data.source", part)
            http_client.discard(part.with_suffix(""))


def _fetch_fsspec(source: str, target: Path) -> None:
    import fsspec

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        fs, remote = fsspec.core.url_to_fs(source)
        size = fs.size(remote)
        with (
            fs.open(remote, "rb") as src,
            part.open("wb") as dst,
            tqdm(total=size, unit="B", unit_scale=True, desc=target.name, leave=False) as bar,
        ):
            while block := src.read(1 << 20):
                dst.write(block)
                bar.update(len(block))
    except ImportError as exc:
        raise MovieGenreError(
            f"{source}: no filesystem installed for this URL ({exc}); install it (e.g. pip install s3fs) "
            "or set data.source to a local copy"
        ) from exc
    except (OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise MovieGenreError(f"{source}: cannot read data source ({exc}); set data.source to a local copy") from exc
    os.replace(part, target)
