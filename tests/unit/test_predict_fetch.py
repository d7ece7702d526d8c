"""`predict --dataset` fetches within bounds and leaves nothing behind when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
from helpers.slow_http import drip_headers, trickle


def _dataset_with_poster(directory: Path, poster_url: str) -> Path:
    directory.mkdir()
    pd.DataFrame({"id": ["n1"], "title": ["One"], "year": [""], "plot": ["a plot"], "genres": [""],
                  "poster": [poster_url]}).to_csv(directory / "movies.csv", index=False)  # fmt: skip
    return directory


def _predict(tmp_path: Path, source: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", str(source), "--out", "p.csv", *options]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class _Arrivals:
    """A handler that notes when the poster is asked for, then answers as ``answer`` does."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.answer = answer
        self.arrived = threading.Event()
        self.at = 0.0

    def __call__(self, h: BaseHTTPRequestHandler) -> None:
        if not self.arrived.is_set():
            self.at = time.monotonic()
            self.arrived.set()
        self.answer(h)


def test_sigterm_while_fetching_removes_every_temporary_and_writes_nothing(http_server, tmp_path: Path) -> None:
    url = http_server(trickle)
    source = _dataset_with_poster(tmp_path / "new", f"{url}/slow.jpg")
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    child = _predict(tmp_path, source, env=os.environ | {"TMPDIR": str(temporaries)})
    deadline = time.monotonic() + 60
    while not any(temporaries.rglob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the poster download is under way
    assert any(temporaries.rglob("*.part")), "the poster download never started"
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert child.returncode == 143
    assert stderr.strip().splitlines()[-1] == "error: stopped by signal SIGTERM; nothing was written"
    assert list(temporaries.iterdir()) == [] and not (tmp_path / "p.csv").exists()


def test_sigterm_while_a_poster_host_drips_its_headers_ends_at_once(http_server, tmp_path: Path) -> None:
    host = _Arrivals(drip_headers)
    source = _dataset_with_poster(tmp_path / "new", f"{http_server(host)}/slow.jpg")
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    child = _predict(tmp_path, source, "--poster-deadline-s", "600", env=os.environ | {"TMPDIR": str(temporaries)})
    try:
        assert host.arrived.wait(60), "the poster was never asked for"
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=5)
    finally:
        child.kill()
    assert child.returncode == 143
    assert stderr.strip().splitlines()[-1] == "error: stopped by signal SIGTERM; nothing was written"
    assert list(temporaries.iterdir()) == [] and not (tmp_path / "p.csv").exists()


def test_a_poster_host_that_drips_its_headers_is_given_up_at_its_deadline(http_server, tmp_path: Path) -> None:
    host = _Arrivals(drip_headers)
    source = _dataset_with_poster(tmp_path / "new", f"{http_server(host)}/slow.jpg")
    options = ("--timeout-s", "3", "--poster-deadline-s", "2", "--retries", "0")
    child = _predict(tmp_path, source, *options)
    try:
        assert host.arrived.wait(60), "the poster was never asked for"
        _, stderr = child.communicate(timeout=2 + 5)
    finally:
        child.kill()
    assert time.monotonic() - host.at < 2 + 5
    assert "poster of n1 not fetched: not complete within its 2 s deadline" in stderr
    assert not (tmp_path / "p.csv").exists()  # no trained pipeline here: the command stops after the fetch


def test_a_dataset_url_that_drips_its_headers_stops_at_deadline_s(http_server, tmp_path: Path) -> None:
    host = _Arrivals(drip_headers)
    url = f"{http_server(host)}/movies.tar.gz"
    child = subprocess.Popen(
        [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", url, "--out", "p.csv", "--deadline-s", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert host.arrived.wait(60), "the dataset was never asked for"
        _, stderr = child.communicate(timeout=2 + 5)
    finally:
        child.kill()
    assert time.monotonic() - host.at < 2 + 5
    assert child.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot download {url}: not complete within its 2 s deadline; fix data.source")
    assert not (tmp_path / "p.csv").exists()
