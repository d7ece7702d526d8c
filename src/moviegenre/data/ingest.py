"""The download stage's work: fetch the source, unpack it safely, write the raw table.

``data/raw/`` holds ``files/`` (the unpacked source), ``posters/`` (posters fetched from URLs),
``movies.parquet`` (one row per record, poster paths relative to ``data/raw``) and
``poster_failures.csv`` (each poster that could not be fetched, with its reason).
"""

from __future__ import annotations

import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import requests
from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.files import atomic_dir
from moviegenre.data import http_client, layouts, sources
from moviegenre.data.archives import extract, is_archive

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ["id", "poster", "reason"]


@dataclass(frozen=True)
class RawSummary:
    layout: str
    movies: int
    posters: int
    poster_failures: int


def build_raw(data_params: dict, out_dir: Path, cache_dir: Path) -> RawSummary:
    """Fetch ``data.source`` and write ``out_dir`` whole, or leave it untouched on error."""
    source = data_params["source"]
    local = sources.fetch(
        source,
        data_params["sha256"],
        timeout_s=data_params["timeout_s"],
        retries=data_params["retries"],
        cache_dir=cache_dir,
    )
    # Absolute, so that poster paths resolved inside the source compare with it.
    with atomic_dir(Path(out_dir).resolve()) as tmp:
        files = tmp / "files"
        if local.is_dir():
            shutil.copytree(local, files)
        elif is_archive(local.name):
            files.mkdir()
            extract(local, files)
        else:
            raise MovieGenreError(f"{source}: not an archive (.tar, .tar.gz, .tgz, .zip) or a directory")
        layout, where = layouts.find_layout(files)
        log.info("found %s layout at %s", layout, where.relative_to(tmp))
        if layout == "mmimdb":
            table = layouts.read_mmimdb(where)
            failures = pd.DataFrame(columns=FAILURE_COLUMNS)
        else:
            table = layouts.read_csv(where)
            table, failures = _resolve_csv_posters(table, where.parent, tmp, cache_dir / "posters", data_params)
        table["poster"] = [
            Path(p).relative_to(tmp).as_posix() if isinstance(p, str) and p else None for p in table["poster"]
        ]
        table["year"] = table["year"].astype("Int64")
        table.to_parquet(tmp / "movies.parquet", index=False)
        failures.to_csv(tmp / "poster_failures.csv", index=False)
        summary = RawSummary(layout, len(table), int(table["poster"].notna().sum()), len(failures))
    return summary


def _safe_name(movie_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", movie_id) or "_"


def _resolve_csv_posters(
    table: pd.DataFrame, csv_dir: Path, out: Path, cache: Path, data_params: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Poster cells are paths inside the source or http(s) URLs; URLs are fetched in parallel."""
    failures: list[dict] = []
    posters: list[str | None] = []
    wanted: dict[int, tuple[str, str, Path]] = {}
    for row, (movie_id, poster) in enumerate(zip(table["id"], table["poster"], strict=True)):
        if not isinstance(poster, str) or not poster:
            posters.append(None)
            continue
        if urlparse(poster).scheme in ("http", "https"):
            suffix = Path(urlparse(poster).path).suffix.lower() or ".jpg"
            wanted[row] = (movie_id, poster, cache / f"{_safe_name(movie_id)}{suffix}")
            posters.append(None)
            continue
        path = (csv_dir / poster).resolve()
        if not path.is_relative_to(out.resolve()) or not path.is_file():
            failures.append({"id": movie_id, "poster": poster, "reason": "file not found in source"})
            posters.append(None)
        else:
            posters.append(str(path))
    if wanted:
        fetched = _fetch_posters(wanted, data_params, failures)
        posters_dir = out / "posters"
        posters_dir.mkdir()
        for row, cached in fetched.items():
            dest = posters_dir / cached.name
            shutil.copy2(cached, dest)
            posters[row] = str(dest)
    table = table.assign(poster=posters)
    failures_table = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
    for failure in failures:
        log.warning("poster of %s not fetched: %s", failure["id"], failure["reason"])
    return table, failures_table


def _fetch_posters(
    wanted: dict[int, tuple[str, str, Path]], data_params: dict, failures: list[dict]
) -> dict[int, Path]:
    fetched: dict[int, Path] = {}
    to_get = {}
    for row, (_, url, cached) in wanted.items():
        if cached.exists():
            fetched[row] = cached  # fetched by an earlier run
        else:
            to_get[row] = (url, cached)
    log.info("posters: %d cached, %d to download", len(fetched), len(to_get))
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=data_params["poster_workers"])
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def get(item: tuple[int, tuple[str, Path]]) -> tuple[int, Path | None, str]:
        row, (url, cached) = item
        try:
            http_client.download(
                url,
                cached,
                timeout_s=data_params["timeout_s"],
                retries=data_params["retries"],
                progress=False,
                session=session,
            )
            return row, cached, ""
        except MovieGenreError as exc:
            return row, None, str(exc)

    with ThreadPoolExecutor(max_workers=data_params["poster_workers"]) as pool:
        results = pool.map(get, to_get.items())
        for row, path, reason in tqdm(results, total=len(to_get), desc="posters", unit=" posters"):
            if path is None:
                movie_id, url, _ = wanted[row]
                failures.append({"id": movie_id, "poster": url, "reason": reason})
            else:
                fetched[row] = path
    return fetched
