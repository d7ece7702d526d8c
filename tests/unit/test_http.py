"""HTTP downloads against a loopback server: retries, resume (never spliced), cache keys, checksum, errors."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from helpers.builders import data_settings
from helpers.slow_http import drip_headers, trickle

from moviegenre.core.errors import MovieGenreError
from moviegenre.download import http_client as http
from moviegenre.download import sources
from moviegenre.download.ingest import build_raw

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
    # The whole cause, not its first 200 characters, and no memory addresses.
    assert "Connection refused" in message and " at 0x" not in message


@pytest.mark.parametrize("url", ["http://", "http://[::1/data.tar", "https://exa mple.com/data.tar"])
def test_malformed_source_url_is_one_line(tmp_path: Path, url: str) -> None:
    with pytest.raises(MovieGenreError) as caught:
        sources.fetch(url, None, timeout_s=1, retries=0, cache_dir=tmp_path)
    assert str(caught.value).startswith(f"{url}: ") or str(caught.value).startswith(f"cannot download {url}: ")
    assert "data.source" in str(caught.value) and "\n" not in str(caught.value)


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


# --- The cache never splices two resources ------------------------------------------------------


class Resource:
    """One URL's current body and validators, served with Range support like a real server.

    ``cut_next`` sends half of the next full body and hangs up; ``honour_if_range`` False
    plays a server that ignores If-Range (the client must then check the 206 itself).
    """

    def __init__(self, body: bytes, etag: str | None = None, last_modified: str | None = None) -> None:
        self.body, self.etag, self.last_modified = body, etag, last_modified
        self.cut_next = False
        self.honour_if_range = True
        self.requests: list[dict[str, str]] = []

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append(dict(h.headers))
        if self._not_modified(h):
            h.send_response(304)
            h.end_headers()
            return
        asked = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        changed = if_range is not None and self.honour_if_range and if_range not in (self.etag, self.last_modified)
        if asked and not changed:
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}")
            self._headers(h, len(self.body) - start)
            h.wfile.write(self.body[start:])
            return
        h.send_response(200)
        self._headers(h, len(self.body))
        if self.cut_next:
            self.cut_next = False
            h.wfile.write(self.body[: len(self.body) // 2])
            h.close_connection = True
            return
        h.wfile.write(self.body)

    def _not_modified(self, h: BaseHTTPRequestHandler) -> bool:
        tag = h.headers.get("If-None-Match")
        return tag is not None and tag == self.etag

    def _headers(self, h: BaseHTTPRequestHandler, length: int) -> None:
        h.send_header("Content-Length", str(length))
        if self.etag:
            h.send_header("ETag", self.etag)
        if self.last_modified:
            h.send_header("Last-Modified", self.last_modified)
        h.end_headers()


def _interrupted(url: str, target: Path) -> None:
    """A download that dies half way, as a killed run would leave it."""
    with pytest.raises(MovieGenreError):
        http.download(url, target, retries=0, backoff_s=0.01, timeout_s=5, progress=False)
    assert http.part_path(target).exists()


def test_cache_is_keyed_by_the_full_url_not_the_file_name(http_server, tmp_path: Path) -> None:
    a, b = Resource(BODY, etag='"a"'), Resource(BODY[::-1], etag='"b"')
    base = http_server(lambda h: (a if h.path.startswith("/A/") else b).handle(h))
    cache = tmp_path / "cache"
    a.cut_next = True
    _interrupted(f"{base}/A/data.tar", sources.cache_path(f"{base}/A/data.tar", cache))
    path = sources.fetch(f"{base}/B/data.tar", None, timeout_s=5, retries=0, cache_dir=cache)
    assert path.read_bytes() == BODY[::-1]  # B whole, nothing of A spliced in
    assert path.name.endswith("-data.tar") and path != sources.cache_path(f"{base}/A/data.tar", cache)
    assert "Range" not in b.requests[-1]
    assert not list(cache.glob("*.part"))  # A's partial can never be resumed into B: swept


@pytest.mark.parametrize("honour_if_range", [True, False])
@pytest.mark.parametrize("validator", ["etag", "last_modified", "size"])
def test_resume_against_a_changed_resource_restarts(
    http_server, tmp_path: Path, validator: str, honour_if_range: bool
) -> None:
    stamps = {
        "etag": ('"v1"', '"v2"'),
        "last_modified": ("Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"),
    }
    first, second = stamps.get(validator, (None, None))
    # Same size when a validator tells the versions apart; a server without one gives only the size.
    old, new = BODY, BODY[::-1] if second else BODY[::-1][: len(BODY) * 3 // 4]
    resource = Resource(old, **({validator: first} if first else {}))
    resource.honour_if_range = honour_if_range
    url = http_server(resource.handle) + "/data.tar.gz"
    target = tmp_path / "data.tar.gz"
    resource.cut_next = True
    _interrupted(url, target)

    resource.body = new  # the server now has another version
    if second:
        setattr(resource, validator, second)
    assert http.download(url, target, retries=0, timeout_s=5, progress=False).read_bytes() == new
    assert not http.part_path(target).exists()


def test_resume_of_an_unchanged_resource_asks_only_for_the_rest(http_server, tmp_path: Path) -> None:
    resource = Resource(BODY, etag='"v1"')
    url = http_server(resource.handle) + "/data.tar.gz"
    target = tmp_path / "data.tar.gz"
    resource.cut_next = True
    _interrupted(url, target)
    assert http.download(url, target, retries=0, timeout_s=5, progress=False).read_bytes() == BODY
    last = resource.requests[-1]
    assert last["If-Range"] == '"v1"' and int(last["Range"].removeprefix("bytes=").rstrip("-")) > 0


def test_finished_download_is_reused_when_the_server_answers_304(http_server, tmp_path: Path) -> None:
    resource = Resource(BODY, etag='"v1"')
    url = http_server(resource.handle) + "/data.tar.gz"
    for _ in range(2):
        path = sources.fetch(url, None, timeout_s=5, retries=0, cache_dir=tmp_path / "cache")
    assert path.read_bytes() == BODY
    assert resource.requests[-1].get("If-None-Match") == '"v1"'  # asked, and got 304: no second body

    resource.body, resource.etag = BODY[::-1], '"v2"'
    assert sources.fetch(url, None, timeout_s=5, retries=0, cache_dir=tmp_path / "cache").read_bytes() == BODY[::-1]


def test_cached_file_of_another_size_than_recorded_is_fetched_again(http_server, tmp_path: Path) -> None:
    resource = Resource(BODY, etag='"v1"')
    url = http_server(resource.handle) + "/data.tar.gz"
    path = sources.fetch(url, None, timeout_s=5, retries=0, cache_dir=tmp_path / "cache")
    path.write_bytes(BODY[:100])  # damaged on disk
    assert not http.is_complete(path, url)
    assert sources.fetch(url, None, timeout_s=5, retries=0, cache_dir=tmp_path / "cache").read_bytes() == BODY


def test_a_trickling_server_meets_the_deadline_not_just_the_read_timeout(http_server, tmp_path: Path) -> None:
    url = http_server(trickle) + "/slow.jpg"
    target = tmp_path / "slow.jpg"
    started = time.monotonic()
    with pytest.raises(http.DownloadError, match=r"not complete within its 1\.5 s deadline"):
        http.download(url, target, timeout_s=5, retries=3, backoff_s=0.01, progress=False, deadline_s=1.5)
    assert time.monotonic() - started < 5  # every byte arrives well within the read timeout
    assert not any(tmp_path.iterdir())  # nothing kept of a bounded download


def test_an_archive_source_that_trickles_stops_at_data_deadline_s(http_server, tmp_path: Path) -> None:
    url = http_server(trickle) + "/mmimdb.tar.gz"
    params = data_settings(url, retries=2, deadline_s=1.5)
    started = time.monotonic()
    with pytest.raises(MovieGenreError, match=r"mmimdb\.tar\.gz.*not complete within its 1\.5 s deadline.*source"):
        build_raw(params, tmp_path / "raw", tmp_path / "cache")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "raw").exists() and not any((tmp_path / "cache").rglob("*.part"))


@pytest.mark.parametrize("announce", [True, False])
def test_a_body_larger_than_max_bytes_is_refused_as_it_arrives(http_server, tmp_path: Path, announce: bool) -> None:
    body = b"y" * 300_000

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if announce:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(body)

    url = http_server(handle) + "/big.jpg"
    with pytest.raises(http.DownloadError, match=r"larger than 0\.1 MB") as caught:
        http.download(url, tmp_path / "big.jpg", retries=2, progress=False, max_bytes=100_000)
    assert ("Content-Length 300000" in str(caught.value)) == announce
    assert not any(tmp_path.iterdir())


def test_a_stop_event_cancels_a_download_in_flight(http_server, tmp_path: Path) -> None:
    url = http_server(trickle) + "/slow.jpg"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(http.DownloadError, match="cancelled"):
        http.download(url, tmp_path / "slow.jpg", timeout_s=5, retries=0, progress=False, stop=stop)
    assert time.monotonic() - started < 3


def _ends_within(seconds: float, work: Callable[[], object]) -> BaseException | None:
    """Run ``work`` in a thread; fail unless it ends within ``seconds``; return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    return raised[0] if raised else None


# --- A server that sends its headers a byte at a time ------------------------------------------------


def test_a_server_that_drips_its_headers_meets_the_deadline(http_server, tmp_path: Path) -> None:
    url = http_server(drip_headers) + "/slow.jpg"

    def fetch() -> None:
        http.download(
            url, tmp_path / "slow.jpg", timeout_s=5, retries=3, backoff_s=0.01, progress=False, deadline_s=1.5
        )

    raised = _ends_within(1.5 + 5, fetch)
    assert isinstance(raised, http.DownloadError)
    assert raised.reason == "not complete within its 1.5 s deadline"
    assert not any(tmp_path.iterdir())


def test_an_archive_source_that_drips_its_headers_stops_at_data_deadline_s(http_server, tmp_path: Path) -> None:
    url = http_server(drip_headers) + "/mmimdb.tar.gz"
    params = data_settings(url, retries=2, deadline_s=1.5)
    raised = _ends_within(1.5 + 5, lambda: build_raw(params, tmp_path / "raw", tmp_path / "cache"))
    assert isinstance(raised, MovieGenreError)
    assert f"cannot download {url}: not complete within its 1.5 s deadline; fix data.source" in str(raised)
    assert not (tmp_path / "raw").exists() and not any((tmp_path / "cache").rglob("*.part"))


def test_a_cancel_cuts_a_download_still_waiting_for_its_headers(http_server, tmp_path: Path) -> None:
    arrived = threading.Event()

    def handle(h: BaseHTTPRequestHandler) -> None:
        arrived.set()
        drip_headers(h)

    url = http_server(handle) + "/slow.jpg"
    cancel = http.Cancel()

    def fetch() -> None:
        http.download(url, tmp_path / "slow.jpg", timeout_s=60, retries=2, progress=False, stop=cancel)

    def cancel_once_asked() -> None:
        assert arrived.wait(10), "the request never reached the server"
        cancel.set()

    threading.Thread(target=cancel_once_asked, daemon=True).start()
    raised = _ends_within(10 + 3, fetch)
    assert isinstance(raised, http.DownloadError) and raised.reason == "cancelled"


# --- Content-Encoding ----------------------------------------------------------------------------


def _send_gzip(h: BaseHTTPRequestHandler, body: bytes, cut: bool = False) -> None:
    """``body`` gzip-encoded, its Content-Length the encoded size; ``cut``: hang up half way."""
    packed = gzip.compress(body)
    h.send_response(200)
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Content-Length", str(len(packed)))
    h.send_header("ETag", '"gz"')
    h.end_headers()
    with contextlib.suppress(OSError):
        h.wfile.write(packed[: len(packed) // 2] if cut else packed)
    h.close_connection = cut


def test_a_gzip_encoded_body_is_written_decoded(http_server, tmp_path: Path) -> None:
    url = http_server(lambda h: _send_gzip(h, BODY)) + "/poster.jpg"
    target = http.download(url, tmp_path / "poster.jpg", retries=0, progress=False, max_bytes=len(BODY))
    assert target.read_bytes() == BODY
    assert http.is_complete(target, url)


def test_a_gzip_bomb_is_refused_by_its_decoded_size(http_server, tmp_path: Path) -> None:
    url = http_server(lambda h: _send_gzip(h, bytes(20_000_000))) + "/bomb.jpg"
    with pytest.raises(http.DownloadError, match=r"larger than 0\.1 MB$"):
        http.download(url, tmp_path / "bomb.jpg", retries=2, progress=False, max_bytes=100_000)
    assert not any(tmp_path.iterdir())


def test_a_cut_gzip_body_is_fetched_again_from_its_first_byte(http_server, tmp_path: Path) -> None:
    asked: list[str | None] = []

    def handle(h: BaseHTTPRequestHandler) -> None:
        asked.append(h.headers.get("Range"))
        _send_gzip(h, BODY, cut=len(asked) == 1)

    url = http_server(handle) + "/data.tar"
    target = tmp_path / "data.tar"
    with pytest.raises(http.DownloadError, match="no complete answer"):
        http.download(url, target, retries=0, timeout_s=5, progress=False)
    assert http.part_path(target).exists()  # an unbounded download keeps its partial bytes...
    assert http.download(url, target, retries=0, timeout_s=5, progress=False).read_bytes() == BODY
    assert asked == [None, None]  # ...but a decoded body is never resumed with a Range
