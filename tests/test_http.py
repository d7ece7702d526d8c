"""HTTP downloads against a loopback server: retries, resume, checksum, unreachable host."""

from __future__ import annotations

import hashlib
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from moviegenre.core.errors import MovieGenreError
from moviegenre.data import http_client as http
from moviegenre.data import sources

BODY = bytes(range(256)) * 400  # 100 KiB


def _send(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200, length: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def test_retries_after_5xx_then_succeeds(http_server, tmp_path: Path) -> None:
    calls = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        calls.append(h.path)
        if len(calls) < 3:
            _send(h, b"busy", status=503)
        else:
            _send(h, BODY)

    url = http_server(handle) + "/data.tar.gz"
    target = http.download(url, tmp_path / "data.tar.gz", retries=4, backoff_s=0.01, progress=False)
    assert target.read_bytes() == BODY
    assert len(calls) == 3
    assert not (tmp_path / "data.tar.gz.part").exists()


def test_connection_cut_mid_body_resumes_with_range(http_server, tmp_path: Path) -> None:
    ranges: list[str | None] = []
    half = len(BODY) // 2

    def handle(h: BaseHTTPRequestHandler) -> None:
        asked = h.headers.get("Range")
        ranges.append(asked)
        if asked is None:
            # Promise the whole body, send half, and hang up.
            _send(h, BODY[:half], length=len(BODY))
            h.close_connection = True
            return
        start = int(asked.removeprefix("bytes=").rstrip("-"))
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        h.send_header("Content-Length", str(len(BODY) - start))
        h.end_headers()
        h.wfile.write(BODY[start:])

    url = http_server(handle) + "/data.tar.gz"
    target = http.download(url, tmp_path / "data.tar.gz", retries=3, backoff_s=0.01, progress=False)
    assert target.read_bytes() == BODY
    assert ranges[0] is None and len(ranges) == 2
    resumed_from = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_from <= half  # only the bytes after the cut were asked for again


def test_4xx_is_an_error_without_retries(http_server, tmp_path: Path) -> None:
    calls = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        calls.append(1)
        _send(h, b"no", status=404)

    url = http_server(handle) + "/missing.tar.gz"
    with pytest.raises(MovieGenreError, match="HTTP 404"):
        http.download(url, tmp_path / "x", retries=3, backoff_s=0.01, progress=False)
    assert len(calls) == 1
    assert not (tmp_path / "x").exists()


def test_checksum_mismatch_names_both_hashes(http_server, tmp_path: Path) -> None:
    url = http_server(lambda h: _send(h, BODY)) + "/data.tar.gz"
    wrong = "0" * 64
    with pytest.raises(MovieGenreError) as caught:
        sources.fetch(url, wrong, timeout_s=5, retries=0, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert wrong in message and hashlib.sha256(BODY).hexdigest() in message
    assert not (tmp_path / "cache" / "data.tar.gz").exists()


def test_verified_download_is_reused_from_cache(http_server, tmp_path: Path) -> None:
    calls = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        calls.append(1)
        _send(h, BODY)

    url = http_server(handle) + "/data.tar.gz"
    digest = hashlib.sha256(BODY).hexdigest()
    for _ in range(2):
        path = sources.fetch(url, digest, timeout_s=5, retries=0, cache_dir=tmp_path / "cache")
    assert path.read_bytes() == BODY and len(calls) == 1


def test_unreachable_host_fails_naming_source_and_fix(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mmimdb.tar.gz"
    with pytest.raises(MovieGenreError) as caught:
        sources.fetch(url, None, timeout_s=2, retries=1, cache_dir=tmp_path)
    message = str(caught.value)
    assert url in message and "data.source" in message and "\n" not in message


def test_local_source_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MovieGenreError, match="data source not found"):
        sources.fetch(str(tmp_path / "nope.tar.gz"), None, timeout_s=1, retries=0, cache_dir=tmp_path)


def test_file_url_is_a_local_path(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"x")
    assert sources.fetch(archive.as_uri(), None, timeout_s=1, retries=0, cache_dir=tmp_path) == archive


def test_relative_source_is_relative_to_the_project_even_in_a_dvc_experiment_copy(tmp_path: Path) -> None:
    project = tmp_path / "project"
    copy = project / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    copy.mkdir(parents=True)
    assert sources.project_root(copy) == project
    assert sources.project_root(project) == project
