"""Damaged input through the download stage's library: one line, and nothing is kept.

Each test reproduces one finding (truncated archive as a partial dataset, leftovers of a
killed run, 0600 outputs, errors naming a deleted temporary folder) with hand-made input.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers.builders import data_settings
from helpers.synthetic import make_movies, write_mmimdb_dir

from moviegenre.core.errors import MovieGenreError
from moviegenre.download import sources
from moviegenre.download.ingest import build_raw
from moviegenre.download.settings import DataSettings


def _params(source: Path | str, **extra: Any) -> DataSettings:
    return data_settings(source, **extra)


def _plain_tar(tmp_path: Path, n: int = 30) -> bytes:
    write_mmimdb_dir(tmp_path / "src", make_movies(n), poster_every=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(tmp_path / "src" / "mmimdb", arcname="mmimdb")
    return buffer.getvalue()


def _fails_keeping_nothing(tmp_path: Path, params: DataSettings) -> str:
    """build_raw must raise one line and leave data/raw as it was (here: a previous good build)."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "movies.parquet").write_bytes(b"previous good build")
    with pytest.raises(MovieGenreError) as caught:
        build_raw(params, raw, tmp_path / "data" / "cache")
    assert (raw / "movies.parquet").read_bytes() == b"previous good build"
    assert not list(raw.parent.glob(".raw.*.tmp"))
    message = str(caught.value)
    assert "\n" not in message and ".tmp" not in message
    return message


def test_plain_tar_cut_at_a_member_boundary_is_not_a_smaller_dataset(tmp_path: Path) -> None:
    whole = _plain_tar(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        boundary = tar.getmembers()[20].offset
    archive = tmp_path / "cut.tar"
    archive.write_bytes(whole[:boundary])
    message = _fails_keeping_nothing(tmp_path, _params(archive))
    assert message.startswith(f"{archive}: truncated or corrupt archive (")


def test_damaged_remote_archive_is_not_kept_in_the_cache(http_server, tmp_path: Path) -> None:
    whole = _plain_tar(tmp_path)
    body = whole[: len(whole) // 2 // 512 * 512]

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    url = http_server(handle) + "/movies.tar"
    message = _fails_keeping_nothing(tmp_path, _params(url))
    assert message.startswith(f"{url}: truncated or corrupt archive")
    cached = sources.cache_path(url, tmp_path / "data" / "cache")
    assert not cached.exists() and not cached.with_name(cached.name + ".meta.json").exists()


def test_hard_link_to_a_missing_member_is_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("mmimdb/dataset/1.jpeg")
        link.type, link.linkname = tarfile.LNKTYPE, "mmimdb/dataset/0.jpeg"
        tar.addfile(link)
    message = _fails_keeping_nothing(tmp_path, _params(archive))
    assert "'mmimdb/dataset/1.jpeg'" in message and "mmimdb/dataset/0.jpeg" in message


def test_empty_archive_names_the_source_not_a_deleted_folder(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar.gz"
    tarfile.open(archive, "w:gz").close()
    assert _fails_keeping_nothing(tmp_path, _params(archive)) == f"{archive}: empty archive (no members)"


def test_archive_without_a_dataset_names_the_source(tmp_path: Path) -> None:
    archive = tmp_path / "other.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    message = _fails_keeping_nothing(tmp_path, _params(archive))
    assert message.startswith(f"{archive}: no dataset found")


def test_extraction_limits_come_from_params(tmp_path: Path) -> None:
    archive = tmp_path / "movies.tar"
    archive.write_bytes(_plain_tar(tmp_path, n=10))
    message = _fails_keeping_nothing(tmp_path, _params(archive, max_members=5))
    assert "data.max_members=5" in message and "refusing member 'mmimdb/dataset/" in message


def test_a_killed_runs_temporaries_are_swept_and_outputs_get_ordinary_modes(tmp_path: Path) -> None:
    archive = tmp_path / "movies.tar"
    archive.write_bytes(_plain_tar(tmp_path, n=10))
    data = tmp_path / "data"
    stale = data / ".raw.k1ll3d.tmp"  # what SIGKILL during extraction leaves behind
    (stale / "files").mkdir(parents=True)
    (stale / "files" / "big.bin").write_bytes(b"x" * 1000)
    old = os.umask(0o022)
    try:
        summary = build_raw(_params(archive), data / "raw", data / "cache")
    finally:
        os.umask(old)
    assert summary.movies == 10
    assert not stale.exists() and not list(data.glob(".*.tmp"))
    raw = data / "raw"
    assert stat.S_IMODE(raw.stat().st_mode) == 0o755
    assert stat.S_IMODE((raw / "movies.parquet").stat().st_mode) == 0o644
    poster = raw / pd.read_parquet(raw / "movies.parquet")["poster"].iloc[0]
    assert stat.S_IMODE(poster.stat().st_mode) == 0o644
    assert stat.S_IMODE(poster.parent.stat().st_mode) == 0o755
