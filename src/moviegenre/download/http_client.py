"""Stream one HTTP(S) URL to a file: timeout, retries with backoff, resume with Range.

The archive is ~110 MB and posters come by the thousand, so a dropped connection must cost
the missing bytes only, and a flaky server a few retries, never a half-written file.

A resume must never splice two resources. Beside ``<target>.part`` lies ``<target>.meta.json``:
the URL, the size and the ETag / Last-Modified the server announced for the body being
written. A resume sends them back (If-Range) and checks the answer's Content-Range, ETag and
Last-Modified against them; a resource that changed is fetched again from its first byte.
The same record lets a finished download be reused when the server answers 304.

A URL may also be bounded: ``max_bytes`` (refused from its Content-Length, or as soon as the
decoded body passes it) and ``deadline_s`` for the whole download, retries included; ``stop``
cancels a download from another thread. A per-read timeout bounds one silence, not a request:
a server that sends a header byte every second never lets a read time out. So a bounded
download runs under a watchdog that shuts its connection at the deadline, or as soon as its
``Cancel`` is set, and whatever read is blocked (TLS handshake, status line, headers, body)
returns at once. That needs the connections of a ``new_session()``.

A body sent with a Content-Encoding (gzip) is written decoded: its Content-Length is checked
against the bytes on the wire, ``max_bytes`` against the decoded bytes (a gzip bomb is refused
as it inflates), and it is never resumed, since a Range counts encoded bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3
from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

CHUNK = 1 << 14  # a cut connection loses at most one chunk before the resume
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_OBJECT_AT = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")

# Called on a complete body before it becomes the target: the reason it is unusable, or None.
Check = Callable[[Path, str | None], str | None]


class DownloadError(MovieGenreError):
    """A URL that could not be fetched; ``reason`` says why without repeating the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot download {url}: {reason}")
        self.url = url
        self.reason = reason


class _Retryable(Exception):
    """A failure worth another try: connection trouble or a 5xx answer."""


class _Restart(Exception):
    """The partial file belongs to another version of the resource: start from byte 0."""


class Cancel(threading.Event):
    """An event that cancels downloads: setting it also shuts their connections at once.

    A plain ``threading.Event`` works as ``stop`` too, but is only seen between pieces of
    body, so a server that sends nothing (or its headers a byte at a time) would hold on.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hooks_lock = threading.Lock()
        self._hooks: set[Callable[[], None]] = set()

    def set(self) -> None:
        super().set()
        with self._hooks_lock:
            hooks = list(self._hooks)
        for hook in hooks:
            hook()

    def subscribe(self, hook: Callable[[], None]) -> None:
        with self._hooks_lock:
            self._hooks.add(hook)
        if self.is_set():
            hook()

    def unsubscribe(self, hook: Callable[[], None]) -> None:
        with self._hooks_lock:
            self._hooks.discard(hook)


@dataclass(frozen=True)
class Bounds:
    """Limits on one download: its size, its wall-clock deadline, and an event that cancels it."""

    max_bytes: int | None = None
    deadline: float | None = None  # time.monotonic() by which it must be complete
    deadline_s: float | None = None  # the same, as given (for the message)
    stop: threading.Event | None = None
    expired: threading.Event = field(default_factory=threading.Event)  # set by the watchdog at the deadline

    def check(self, url: str, written: int) -> None:
        if self.stop is not None and self.stop.is_set():
            raise DownloadError(url, "cancelled")
        if self.max_bytes is not None and written > self.max_bytes:
            raise DownloadError(url, f"larger than {_size_text(self.max_bytes)}")
        if self.deadline is not None and (self.expired.is_set() or time.monotonic() > self.deadline):
            raise DownloadError(url, f"not complete within its {self.deadline_s:g} s deadline")

    def timeout(self, timeout_s: float) -> float:
        """The per-read timeout, shortened so that no read outlasts the deadline."""
        if self.deadline is None:
            return timeout_s
        return max(0.1, min(timeout_s, self.deadline - time.monotonic()))


def _size_text(size: int) -> str:
    return f"{size / 1e6:g} MB"


_current = threading.local()  # .watchdog: the _Watchdog of the download this thread is running
_handles_lock = threading.Lock()  # a handle is never shut down while it is being closed


class _WatchedConnection(urllib3.connection.HTTPConnection):
    """A connection that the watchdog of the download using it can shut from another thread.

    ``_handle`` is a duplicate of the socket's file descriptor, taken before TLS wraps (and
    takes over) the socket, so that even a handshake can be cut; shutting it down ends the
    connection for every descriptor of it.
    """

    _handle: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        handle = sock.dup()
        with _handles_lock:
            old, self._handle = self._handle, handle
        if old is not None:
            old.close()
        _watch(self)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)  # a connection reused from the pool serves a new download
        super().request(*args, **kwargs)

    def close(self) -> None:
        super().close()
        with _handles_lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def shut(self) -> None:
        with _handles_lock, contextlib.suppress(OSError):
            if self._handle is not None:
                self._handle.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPSConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its connections (direct or through an HTTP proxy) made watchable."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # a SOCKS manager keeps its own connections
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def new_session(pool_maxsize: int = 10) -> requests.Session:
    """A requests session whose connections a download's deadline or ``Cancel`` can cut."""
    http = requests.Session()
    adapter = _WatchedAdapter(pool_maxsize=pool_maxsize)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def _watch(conn: _WatchedConnection) -> None:
    watchdog: _Watchdog | None = getattr(_current, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(conn)


class _Watchdog:
    """Shuts the connections of one download when its deadline passes or it is cancelled.

    It lives for one call of ``download`` in one thread; the connections that thread opens
    or reuses meanwhile register with it. Once it has fired, a new connection is shut as it
    registers, and ``Bounds.check`` reports the deadline or the cancellation.
    """

    def __init__(self, bounds: Bounds) -> None:
        self._bounds = bounds
        self._lock = threading.Lock()
        self._conns: set[_WatchedConnection] = set()
        self._fired = False
        self._closed = False
        self._timer: threading.Timer | None = None
        self._outer: _Watchdog | None = None

    def __enter__(self) -> _Watchdog:
        self._outer = getattr(_current, "watchdog", None)
        _current.watchdog = self
        if self._bounds.deadline is not None:
            self._timer = threading.Timer(max(0.0, self._bounds.deadline - time.monotonic()), self._expire)
            self._timer.daemon = True
            self._timer.start()
        if isinstance(self._bounds.stop, Cancel):
            self._bounds.stop.subscribe(self.fire)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closed = True
            self._conns.clear()
        if self._timer is not None:
            self._timer.cancel()
        if isinstance(self._bounds.stop, Cancel):
            self._bounds.stop.unsubscribe(self.fire)
        _current.watchdog = self._outer

    def watch(self, conn: _WatchedConnection) -> None:
        with self._lock:
            if self._closed:
                return
            self._conns.add(conn)
            fired = self._fired
        if fired:
            conn.shut()

    def _expire(self) -> None:
        self._bounds.expired.set()  # before the sockets close, so the reads that fail see why
        self.fire()

    def fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._fired = True
            conns = list(self._conns)
        for conn in conns:
            conn.shut()


@dataclass(frozen=True)
class Meta:
    """What the server said about the body in ``.part`` (or the finished target)."""

    url: str
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    encoding: str | None = None  # the body's Content-Encoding on the wire (gzip, ...); None: identity

    @classmethod
    def of(cls, url: str, response: requests.Response, size: int | None) -> Meta:
        headers = response.headers
        encoding = headers.get("Content-Encoding", "").strip().lower()
        return cls(
            url,
            size,
            headers.get("ETag"),
            headers.get("Last-Modified"),
            headers.get("Content-Type"),
            encoding if encoding not in ("", "identity") else None,
        )


def meta_path(target: Path) -> Path:
    return target.with_name(target.name + ".meta.json")


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def read_meta(target: Path, url: str) -> Meta | None:
    """The record beside ``target`` if it is about ``url`` and readable; None otherwise."""
    try:
        meta = Meta(**json.loads(meta_path(target).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return meta if meta.url == url else None


def _write_meta(target: Path, meta: Meta) -> None:
    """Write the record beside ``target`` via a rename, so a kill never leaves half of it."""
    path = meta_path(target)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(meta)))
    os.replace(tmp, path)


def discard(target: Path) -> None:
    """Forget a download of ``target``: the file, its partial bytes and its record."""
    for path in (target, part_path(target), meta_path(target)):
        path.unlink(missing_ok=True)


def is_complete(target: Path, url: str) -> bool:
    """``target`` is a finished download of ``url`` of the size recorded when it was fetched."""
    meta = read_meta(target, url)
    return meta is not None and target.is_file() and meta.size == target.stat().st_size


def download(
    url: str,
    target: Path,
    *,
    timeout_s: float = 30.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    progress: bool = True,
    session: requests.Session | None = None,
    check: Check | None = None,
    max_bytes: int | None = None,
    deadline_s: float | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """Download ``url`` to ``target``; partial bytes live in ``target.part`` until complete.

    A ``.part`` file left by an interrupted run of the same URL is resumed with a Range
    request when the server still describes the same resource. The final rename happens
    only after the whole body (Content-Length, when given) has arrived and ``check`` (given
    the file and its Content-Type) found nothing wrong. A finished ``target`` is kept when
    the server answers 304 to its ETag / Last-Modified.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    http = session or new_session()
    deadline = time.monotonic() + deadline_s if deadline_s is not None else None
    bounds = Bounds(max_bytes, deadline, deadline_s, stop)
    if deadline is None and stop is None:
        return _download(http, url, target, timeout_s, retries, backoff_s, progress, check, bounds)
    with _Watchdog(bounds):
        return _download(http, url, target, timeout_s, retries, backoff_s, progress, check, bounds)


def _download(
    http: requests.Session,
    url: str,
    target: Path,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    progress: bool,
    check: Check | None,
    bounds: Bounds,
) -> Path:
    if not part_path(target).exists() and _still_current(http, url, target, bounds.timeout(timeout_s)):
        log.info("%s: unchanged on the server (304); using %s", url, target)
        return target
    last_error = ""
    try:
        for attempt in range(retries + 1):
            if attempt:
                delay = backoff_s * 2 ** (attempt - 1)
                log.warning("retrying %s in %.1fs (%s)", url, delay, last_error)
                if bounds.deadline is not None:
                    delay = min(delay, max(0.0, bounds.deadline - time.monotonic()))
                if bounds.stop is not None:
                    bounds.stop.wait(delay)  # returns early when the download is cancelled
                else:
                    time.sleep(delay)
            bounds.check(url, 0)
            try:
                try:
                    _fetch_once(http, url, target, timeout_s, progress, bounds)
                except _Restart:
                    _fetch_once(http, url, target, timeout_s, progress, bounds)  # .part is gone: no Range this time
                _finish(url, target, check)
                return target
            except (_Retryable, _Restart) as exc:
                last_error = str(exc)
        bounds.check(url, 0)
    except DownloadError:
        if bounds.max_bytes is not None or bounds.deadline is not None:
            discard(target)  # a bounded download is not resumed: its partial bytes are dropped
        raise
    raise DownloadError(url, f"no complete answer after {retries + 1} attempt(s) ({last_error})")


def _still_current(http: requests.Session, url: str, target: Path, timeout_s: float) -> bool:
    """A conditional GET: True when the server confirms ``target`` is what ``url`` still serves."""
    meta = read_meta(target, url)
    if meta is None or not is_complete(target, url):
        return False
    headers = {"If-None-Match": meta.etag} if meta.etag else {}
    if meta.last_modified:
        headers["If-Modified-Since"] = meta.last_modified
    if not headers:
        return False
    try:
        with http.get(url, stream=True, timeout=timeout_s, headers=headers) as response:
            return response.status_code == 304
    except requests.RequestException:
        return False  # the download proper retries and reports


def _finish(url: str, target: Path, check: Check | None) -> None:
    part = part_path(target)
    meta = read_meta(target, url) or Meta(url)
    problem = check(part, meta.content_type) if check else None
    if problem:
        discard(target)
        raise DownloadError(url, problem)
    _write_meta(target, Meta(url, part.stat().st_size, meta.etag, meta.last_modified, meta.content_type, meta.encoding))
    os.replace(part, target)


def _fetch_once(
    http: requests.Session, url: str, target: Path, timeout_s: float, progress: bool, bounds: Bounds
) -> None:
    part = part_path(target)
    saved = read_meta(target, url) if part.exists() else None
    if part.exists() and (saved is None or saved.encoding or not (saved.etag or saved.last_modified or saved.size)):
        # Nothing tells whether these bytes belong to this resource, or they are a decoded
        # body, whose length says nothing about the encoded byte a Range would start at.
        part.unlink()
    have = part.stat().st_size if part.exists() else 0
    headers = _resume_headers(saved, have) if have else {}
    try:
        with http.get(url, stream=True, timeout=bounds.timeout(timeout_s), headers=headers) as response:
            start, total = _accept(url, response, target, saved, have)
            encoded = Meta.of(url, response, None).encoding is not None
            if total is not None and bounds.max_bytes is not None and total > bounds.max_bytes and not encoded:
                raise DownloadError(url, f"larger than {_size_text(bounds.max_bytes)} (Content-Length {total})")
            _write_body(response, part, start, total, progress, url, bounds)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        bounds.check(url, 0)  # a connection the watchdog cut: say why
        raise _Retryable(describe(exc)) from exc
    except requests.RequestException as exc:  # a malformed URL, a redirect loop: no retry will help
        bounds.check(url, 0)
        raise DownloadError(url, describe(exc)) from exc


def _resume_headers(saved: Meta | None, have: int) -> dict[str, str]:
    headers = {"Range": f"bytes={have}-"}
    validator = (saved.etag or saved.last_modified) if saved else None
    if validator:
        headers["If-Range"] = validator  # a server that sees a change answers 200 with the whole body
    return headers


def _accept(
    url: str, response: requests.Response, target: Path, saved: Meta | None, have: int
) -> tuple[int, int | None]:
    """Judge the answer's status; return where the body starts in ``.part`` and the full size."""
    status = response.status_code
    if status == 416 and have:
        discard(target)
        raise _Restart("range not satisfiable: the partial file does not match the resource")
    if status >= 500:
        raise _Retryable(f"HTTP {status}")
    if status >= 400:
        raise DownloadError(url, f"HTTP {status}")
    length = response.headers.get("Content-Length")
    if status == 206:
        if not have or saved is None:
            raise _Retryable("partial content that was not asked for")
        total = _check_resume(url, response, target, saved, have)
        return have, total
    total = int(length) if length is not None and length.isdigit() else None
    target.unlink(missing_ok=True)  # an older copy must not pass for the body announced below
    _write_meta(target, Meta.of(url, response, total))  # before the body, so a kill can resume
    return 0, total


def _check_resume(url: str, response: requests.Response, target: Path, saved: Meta, have: int) -> int | None:
    """The 206's range, size and validators must match the partial file's record, or start over."""
    answer = Meta.of(url, response, None)
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    problems = []
    if match is None or int(match.group(1)) != have:
        problems.append(f"Content-Range {response.headers.get('Content-Range')!r} does not start at byte {have}")
    total = int(match.group(3)) if match and match.group(3) != "*" else None
    if saved.size is not None and total != saved.size:
        problems.append(f"size {total} instead of {saved.size}")
    if saved.etag and answer.etag != saved.etag:
        problems.append(f"ETag {answer.etag} instead of {saved.etag}")
    if saved.last_modified and answer.last_modified != saved.last_modified:
        problems.append(f"Last-Modified {answer.last_modified} instead of {saved.last_modified}")
    if answer.encoding != saved.encoding:
        problems.append(f"Content-Encoding {answer.encoding} instead of {saved.encoding}")
    if problems:
        log.warning("%s changed since the partial download (%s); starting again", url, "; ".join(problems))
        discard(target)
        raise _Restart("the resource changed during the download: " + "; ".join(problems))
    return total


def _write_body(
    response: requests.Response, part: Path, start: int, total: int | None, progress: bool, url: str, bounds: Bounds
) -> None:
    """Write the decoded body after ``start`` bytes of ``part``.

    ``total`` (Content-Length, or the size in Content-Range) counts bytes on the wire, which
    differ from the decoded bytes when the body has a Content-Encoding; ``bounds`` limits the
    decoded bytes, which are what lands on the disk.
    """
    mode = "ab" if start else "wb"
    written = start
    encoded = Meta.of(url, response, None).encoding is not None
    with (
        part.open(mode) as sink,
        tqdm(
            total=None if encoded else total,
            initial=start,
            unit="B",
            unit_scale=True,
            desc=Path(url.split("?")[0]).name or url,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for chunk in _arriving(response):
            sink.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
            bounds.check(url, written)
    bounds.check(url, written)  # a connection the watchdog cut can look like the end of the body
    received = start + response.raw.tell()  # on the wire: encoded, when there is a Content-Encoding
    if total is not None and received < total:
        raise _Retryable(f"connection closed after {received} of {total} bytes")
    if total is not None and received > total:
        part.unlink()
        raise _Retryable(f"{received} bytes where {total} were announced")


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The body in the pieces it arrives in (up to CHUNK bytes), decoded; read errors as requests' own."""
    raw = response.raw
    try:
        while chunk := raw.read1(CHUNK, decode_content=True):
            yield chunk
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError) as exc:
        raise requests.ConnectionError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc


def describe(exc: BaseException) -> str:
    """The whole cause of a connection failure on one line, without memory addresses.

    requests wraps urllib3's MaxRetryError, whose ``reason`` is the failure that matters
    ('Connection refused', 'Name or service not known'); its text is kept whole.
    """
    cause: BaseException = exc
    while True:
        inner = getattr(cause, "reason", None)
        if not isinstance(inner, BaseException) and cause.args and isinstance(cause.args[0], BaseException):
            inner = cause.args[0]
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = " ".join(_OBJECT_AT.sub("", str(cause)).split())
    kind = type(exc).__name__
    return f"{kind}: {text}" if text else kind
