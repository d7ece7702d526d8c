"""The download stage's work: fetch the source, unpack it safely, write the raw table.

``data/raw/`` holds ``files/`` (the unpacked source), ``posters/`` (posters fetched from URLs),
``movies.parquet`` (one row per record, poster paths relative to ``data/raw``) and
``poster_failures.csv`` (each poster that could not be fetched, with its reason).

Poster URLs are cached under ``data/cache/posters/`` by a hash of the URL, never by the
movie id: ids ``a/1`` and ``a_1`` are two movies, and a poster whose URL changed is a new
poster. Only a complete image is cached; an error page served with status 200 is a
recorded poster failure.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from PIL import Image
from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir
from moviegenre.download import http_client, layouts, sources
from moviegenre.download.archives import CorruptArchive, Limits, extract, is_archive
from moviegenre.download.directories import copy_directory
from moviegenre.download.settings import DataSettings

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["id", "poster", "reason"]
POSTER_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
# Servers that do not know a file's type say so; the decoder then decides.
_UNTYPED = ("application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class RawSummary:
    layout: str
    movies: int
    posters: int
    poster_failures: int


def build_raw(data: DataSettings, out_dir: Path, cache_dir: Path) -> RawSummary:
    """Fetch ``data.source`` and write ``out_dir`` whole, or leave it untouched on error."""
    source = data.source
    local = sources.fetch(
        source,
        data.sha256,
        timeout_s=data.timeout_s,
        retries=data.retries,
        deadline_s=data.deadline_s,
        cache_dir=cache_dir,
    )
    # Absolute, so that poster paths resolved inside the source compare with it.
    with atomic_dir(Path(out_dir).resolve()) as tmp:
        files = tmp / "files"
        _unpack(source, local, files, Limits.from_params(data), cache_dir)
        layout, where = layouts.find_layout(files, name=source)
        log.info("found %s layout at %s", layout, where.relative_to(tmp))
        if layout == "mmimdb":
            table = layouts.read_mmimdb(where)
            failures = pd.DataFrame(columns=FAILURE_COLUMNS)
        else:
            table = layouts.read_csv(where, name=f"{source.rstrip('/')}/{where.relative_to(files).as_posix()}")
            table, failures = _resolve_csv_posters(table, where.parent, tmp, cache_dir / "posters", data)
        table["poster"] = [
            Path(p).relative_to(tmp).as_posix() if isinstance(p, str) and p else None for p in table["poster"]
        ]
        table["year"] = table["year"].astype("Int64")
        table.to_parquet(tmp / "movies.parquet", index=False)
        failures.to_csv(tmp / "poster_failures.csv", index=False)
        summary = RawSummary(layout, len(table), int(table["poster"].notna().sum()), len(failures))
    return summary


def _unpack(source: str, local: Path, files: Path, limits: Limits, cache_dir: Path) -> None:
    """Copy a directory source or extract an archive into ``files``; a damaged download is forgotten."""
    if local.is_dir():
        copy_directory(local, files, limits=limits, name=source)
        return
    if not is_archive(local.name):
        raise MovieGenreError(f"{source}: not an archive (.tar, .tar.gz, .tgz, .zip) or a directory")
    files.mkdir()
    try:
        extract(local, files, limits=limits, name=source)
    except CorruptArchive:
        sources.forget(local, cache_dir)
        raise


def poster_cache_path(cache: Path, url: str) -> Path:
    """The cached poster of ``url``: named by a hash of the whole URL, with its image suffix."""
    suffix = Path(urlparse(url).path).suffix.lower()
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    return cache / f"{key}{suffix if suffix in POSTER_SUFFIXES else '.jpg'}"


def check_poster(path: Path, content_type: str | None) -> str | None:
    """Why a downloaded poster is not an image, or None (then it may be cached and used).

    A server that answers a missing poster with an HTML page and status 200 says so in its
    Content-Type; one that says nothing useful is judged by the decoder.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith("image/") and kind not in _UNTYPED:
        return f"not an image (Content-Type {kind})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
    except Image.DecompressionBombError:
        return None  # an image all the same: prepare counts it as too large
    except Exception:  # hostile bytes can make any decoder raise anything
        return "not an image (cannot be decoded)"
    return None


def _resolve_csv_posters(
    table: pd.DataFrame, csv_dir: Path, out: Path, cache: Path, data: DataSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Poster cells are paths inside the source or http(s) URLs; URLs are fetched in parallel."""
    failures: list[dict] = []
    posters: list[str | None] = []
    wanted: dict[int, str] = {}  # row -> URL
    for row, (movie_id, poster) in enumerate(zip(table["id"], table["poster"], strict=True)):
        posters.append(None)
        if not isinstance(poster, str) or not poster:
            continue
        scheme = _scheme(poster)
        if scheme is None:
            failures.append({"id": movie_id, "poster": poster, "reason": "not a valid URL or path"})
            continue
        if scheme in ("http", "https"):
            wanted[row] = poster
            continue
        path = (csv_dir / poster).resolve()
        if not path.is_relative_to(out.resolve()) or not path.is_file():
            failures.append({"id": movie_id, "poster": poster, "reason": "file not found in source"})
        else:
            posters[row] = str(path)
    if wanted:
        fetched, reasons = _fetch_posters(list(dict.fromkeys(wanted.values())), cache, data)
        posters_dir = out / "posters"
        posters_dir.mkdir()
        for row, url in wanted.items():
            if url not in fetched:
                failures.append({"id": table["id"].iloc[row], "poster": url, "reason": reasons[url]})
                continue
            dest = posters_dir / fetched[url].name
            if not dest.exists():  # movies that share a URL share its poster
                shutil.copyfile(fetched[url], dest)
            posters[row] = str(dest)
    table = table.assign(poster=posters)
    failures_table = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
    for failure in failures:
        log.warning("poster of %s not fetched: %s", failure["id"], failure["reason"])
    return table, failures_table


def _scheme(poster: str) -> str | None:
    """The URL scheme of a poster cell ('' for a path), or None when it cannot be parsed."""
    try:
        return urlparse(poster).scheme.lower()
    except ValueError:
        return None


def _fetch_posters(urls: list[str], cache: Path, data: DataSettings) -> tuple[dict[str, Path], dict[str, str]]:
    """Each URL's cached poster (checked complete, else downloaded), or the reason it has none.

    Each download is bounded in size and time: ``max_poster_mb`` and ``poster_deadline_s`` from
    params.yaml's data section (or ``predict --dataset``'s options). An interrupt
    (Ctrl-C, or SIGTERM turned into an exception) cancels the downloads in flight.
    """
    fetched: dict[str, Path] = {}
    reasons: dict[str, str] = {}
    to_get = []
    for url in urls:
        cached = poster_cache_path(cache, url)
        if http_client.is_complete(cached, url):
            fetched[url] = cached  # fetched by an earlier run
        else:
            to_get.append(url)
    log.info("posters: %d cached, %d to download", len(fetched), len(to_get))
    session = http_client.new_session(pool_maxsize=data.poster_workers)
    stop = http_client.Cancel()
    max_bytes = int(data.max_poster_mb * 1e6)
    deadline_s = data.poster_deadline_s

    def get(url: str) -> tuple[str, Path | None, str]:
        cached = poster_cache_path(cache, url)
        try:
            http_client.download(
                url,
                cached,
                timeout_s=data.timeout_s,
                retries=data.retries,
                progress=False,
                session=session,
                check=check_poster,
                max_bytes=max_bytes,
                deadline_s=deadline_s,
                stop=stop,
            )
            return url, cached, ""
        except http_client.DownloadError as exc:
            return url, None, exc.reason

    pool = ThreadPoolExecutor(max_workers=data.poster_workers)
    try:
        results = pool.map(get, to_get)
        for url, path, reason in tqdm(results, total=len(to_get), desc="posters", unit=" posters"):
            if path is None:
                reasons[url] = reason
            else:
                fetched[url] = path
    except BaseException:
        stop.set()  # cuts the connections of the downloads in flight, wherever they are blocked
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return fetched, reasons
