"""Stream one HTTP(S) URL to a file: timeout, retries with backoff, resume with Range.

The archive is ~110 MB and posters come by the thousand, so a dropped connection must cost
the missing bytes only, and a flaky server a few retries, never a half-written file.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests
from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

CHUNK = 1 << 14  # a cut connection loses at most one chunk before the resume


class _Retryable(Exception):
    """A failure worth another try: connection trouble or a 5xx answer."""


def download(
    url: str,
    target: Path,
    *,
    timeout_s: float = 30.0,
    retries: int = 4,
    backoff_s: float = 0.5,
    progress: bool = True,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``target``; partial bytes live in ``target.part`` until complete.

    A ``.part`` file left by an interrupted run is resumed with a Range request. The final
    rename happens only after the whole body (Content-Length, when given) has arrived.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    http = session or requests.Session()
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("retrying %s in %.1fs (%s)", url, delay, last_error)
            time.sleep(delay)
        try:
            _fetch_once(http, url, part, timeout_s, progress)
            os.replace(part, target)
            return target
        except _Retryable as exc:
            last_error = str(exc)
    raise MovieGenreError(
        f"cannot download {url} after {retries + 1} attempts ({last_error}); "
        "fetch it yourself and set data.source to the local path"
    )


def _fetch_once(http: requests.Session, url: str, part: Path, timeout_s: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with http.get(url, stream=True, timeout=timeout_s, headers=headers) as response:
            if response.status_code == 416 and have:
                part.unlink()  # the partial file does not match the remote one: start over
                raise _Retryable("range not satisfiable, restarting")
            if response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise MovieGenreError(f"cannot download {url}: HTTP {response.status_code}")
            resumed = response.status_code == 206
            if have and not resumed:
                have = 0  # server ignored Range: rewrite from the start
            remaining = response.headers.get("Content-Length")
            total = have + int(remaining) if remaining is not None else None
            _write_body(response, part, have if resumed else 0, total, progress, url)
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retryable(type(exc).__name__ + ": " + _short(exc)) from exc


def _write_body(
    response: requests.Response, part: Path, start: int, total: int | None, progress: bool, url: str
) -> None:
    mode = "ab" if start else "wb"
    written = start
    with (
        part.open(mode) as sink,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            desc=Path(url.split("?")[0]).name or url,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        for chunk in response.iter_content(CHUNK):
            sink.write(chunk)
            written += len(chunk)
            bar.update(len(chunk))
    if total is not None and written < total:
        raise _Retryable(f"connection closed after {written} of {total} bytes")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
