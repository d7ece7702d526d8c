"""The server's time and queue bounds over real HTTP: uvicorn with the server's own protocol and
application, in front of a predictor double that answers when the test lets it.

Each case is what a hostile client does: headers sent a byte at a time, a connection that sends
nothing, a body that trickles, more movies at once than the queue holds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from moviegenre.cli import http_protocol
from moviegenre.cli.serve import create_app, server_config
from moviegenre.core.paths import ProjectPaths

GENRES = ["Comedy", "Drama", "Horror"]
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_QUEUE = 2


class HeldPredictor:
    """Scores every plot the same once ``release`` is set: the test decides when predictions finish."""

    def __init__(self) -> None:
        self.genres, self.branches = GENRES, ["text_ml"]
        self.ensemble = SimpleNamespace(method="mean", average="probabilities", branches=["text_ml"])
        self.release, self.busy = threading.Event(), threading.Event()

    def predict(self, posters: list[str | None], plots: list[str | None]) -> dict[str, np.ndarray]:
        self.busy.set()
        self.release.wait(30)
        scores = np.tile([0.2, 0.7, 0.1], (len(plots), 1))
        return {"text_ml": scores, "ensemble": scores}

    def genre_sets(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        return scores["ensemble"] > 0.5


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, HeldPredictor]]:
    monkeypatch.setattr(http_protocol.HeaderDeadlineProtocol, "header_timeout_s", HEADER_TIMEOUT_S)
    predictor = HeldPredictor()
    app = create_app(predictor, ProjectPaths(tmp_path), max_upload_mb=0.1, warm_up=False, max_queue=MAX_QUEUE,
                     body_timeout_s=BODY_TIMEOUT_S)  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import uvicorn

    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield url, predictor
    finally:
        predictor.release.set()
        server.should_exit = True
        thread.join(15)


def _answer(sock: socket.socket, wait_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    sock.settimeout(wait_s)
    began, data = time.monotonic(), b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - began


def test_headers_that_trickle_get_408_in_json_and_a_closed_connection(served: tuple[str, HeldPredictor]) -> None:
    url, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: local")  # and nothing more
        data, took = _answer(slow, wait_s=HEADER_TIMEOUT_S + 10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert body == b'{"error":"request headers not complete within 1 s"}'
    assert HEADER_TIMEOUT_S - 0.2 < took < HEADER_TIMEOUT_S + 3
    assert httpx.get(f"{url}/health").status_code == 200  # others were answered all along


def test_a_connection_that_sends_nothing_is_closed(served: tuple[str, HeldPredictor]) -> None:
    port = int(served[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as idle:
        data, took = _answer(idle, wait_s=HEADER_TIMEOUT_S + 10)
    assert data.startswith(b"HTTP/1.1 408 ") and took < HEADER_TIMEOUT_S + 3


def test_a_body_that_trickles_gets_408_in_json(served: tuple[str, HeldPredictor]) -> None:
    port = int(served[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")  # fmt: skip
        began = time.monotonic()
        for _ in range(4):  # a byte every half second: each read is prompt, the whole body never comes
            time.sleep(0.5)
            slow.sendall(b" ")
        data, _ = _answer(slow, wait_s=15)
        took = time.monotonic() - began
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert body == b'{"error":"request body not complete within 1 s"}'
    assert took < BODY_TIMEOUT_S + HEADER_TIMEOUT_S + 5  # answered, then closed by the header deadline


def test_a_full_queue_is_503_with_retry_after_and_the_queued_movies_are_answered(
    served: tuple[str, HeldPredictor],
) -> None:
    url, predictor = served

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, float]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = asyncio.create_task(client.post("/predict", json={"plot": "held by the predictor"}))
            while not predictor.busy.is_set():
                await asyncio.sleep(0.02)
            plots = [{"plot": f"plot {i}"} for i in range(MAX_QUEUE)]
            queued = [asyncio.create_task(client.post("/predict", json=plot)) for plot in plots]
            await asyncio.sleep(0.3)  # until both wait in the queue
            began = time.monotonic()
            refused = await client.post("/predict", json={"plot": "one too many"})
            refused_in = time.monotonic() - began
            health = await client.get("/health")
            assert health.status_code == 200
            predictor.release.set()
            return list(await asyncio.gather(first, *queued)), refused, refused_in

    answered, refused, refused_in = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert refused.json() == {"error": f"{MAX_QUEUE} movies are waiting already; try again shortly"}
    assert refused_in < 2  # at once, not after the queue drains
    assert [a.status_code for a in answered] == [200] * (MAX_QUEUE + 1)
    assert all(a.json()["genres"] == ["Drama"] for a in answered)
