"""The server's bounds and error answers over real HTTP: uvicorn with the server's own protocol
and application, in front of a predictor double that answers when the test lets it.

Each case is what a hostile client does: headers sent a byte at a time, a connection that sends
nothing, a body that trickles, more movies at once than the queue holds, many near-limit bodies
held open at once, more connections than the cap, a request h11 cannot parse, a Host header
with a name where its port goes, plots that show nothing or are not Unicode text; and what a
failure inside the server tells the client (nothing of the exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from moviegenre.core.paths import ProjectPaths
from moviegenre.serve import protocol
from moviegenre.serve.app import INTERNAL_ERROR, create_app
from moviegenre.serve.config import server_config
from moviegenre.serve.middleware import host_name

GENRES = ["Comedy", "Drama", "Horror"]
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_QUEUE = 2
MAX_CONNECTIONS = 100


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

    def predict_with_sets(
        self, posters: list[str | None], plots: list[str | None]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        scores = self.predict(posters, plots)
        return scores, scores["ensemble"] > 0.5


@contextlib.contextmanager
def _running(app: Any, max_connections: int = MAX_CONNECTIONS) -> Iterator[tuple[str, Any]]:
    """uvicorn serving ``app`` with the server's own settings on a free port, in a thread: its URL
    and the ``uvicorn.Server`` (whose ``server_state`` counts the open connections)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import uvicorn

    server = uvicorn.Server(server_config(app, "127.0.0.1", port, max_connections))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, HeldPredictor]]:
    monkeypatch.setattr(protocol.HeaderDeadlineProtocol, "header_timeout_s", HEADER_TIMEOUT_S)
    predictor = HeldPredictor()
    app = create_app(predictor, ProjectPaths(tmp_path), max_upload_mb=0.1, warm_up=False, max_queue=MAX_QUEUE,
                     body_timeout_s=BODY_TIMEOUT_S)  # fmt: skip
    with _running(app) as (url, _):
        try:
            yield url, predictor
        finally:
            predictor.release.set()  # before the server stops: its shutdown waits for the prediction


def _answer(sock: socket.socket, wait_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took. A server
    that closes with the client's bytes unread resets the connection (TCP's RST, not FIN): after
    its answer, that is the end of the stream as a close is."""
    sock.settimeout(wait_s)
    began, data = time.monotonic(), b""
    with contextlib.suppress(ConnectionResetError):
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
        for _ in range(6):  # a byte every 0.3 s: each read is prompt, the whole body never comes
            if select.select([slow], [], [], 0.3)[0]:  # answered: no byte after it into a closing connection
                break
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


def _wait_for(condition: Any, what: str, timeout_s: float = 15) -> None:
    """Until ``condition()`` holds (state the server changes on its own thread)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.02)


def _held_body(port: int, declared: int, sent: bytes) -> socket.socket:
    """A connection whose JSON request declares ``declared`` bytes and has sent ``sent`` of them."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (declared, sent))  # fmt: skip
    return sock


def test_bodies_in_flight_are_capped_over_all_connections(tmp_path: Path) -> None:
    """Two held 100 KB bodies fill a 250 KB budget: a third body gets 503 at once (its
    Content-Length), a chunked one as it arrives; a request without a body still passes, and the
    budget comes back when the held connections go."""
    predictor = HeldPredictor()
    predictor.release.set()
    app = create_app(predictor, ProjectPaths(tmp_path), max_upload_mb=0.1, warm_up=False, body_timeout_s=60,
                     max_inflight_mb=0.25)  # fmt: skip
    budget = app.state.inflight
    plot = {"plot": "ghost " * 10_000}  # 60 KB of JSON
    busy = {"error": "the server is receiving 0.25 MB of requests already (--max-inflight-mb); try again shortly"}
    with _running(app) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        held = [_held_body(port, 100_000, b'{"plot": "' + b"x" * 1000) for _ in range(2)]
        _wait_for(lambda: budget.used == 200_000, "both held bodies counted")
        refused = httpx.post(f"{url}/predict", json=plot)
        assert (refused.status_code, refused.json()) == (503, busy)
        assert refused.headers["retry-after"] == "2"
        chunks = b'{"plot": "' + b"ghost " * 10_000 + b'"}'
        chunked = httpx.post(f"{url}/predict", content=iter([chunks[:30_000], chunks[30_000:]]),
                             headers={"content-type": "application/json"})  # fmt: skip
        assert (chunked.status_code, chunked.json()) == (503, busy)
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.post(f"{url}/predict", json={"plot": "a short plot"}).status_code == 200  # 30 bytes fit
        for sock in held:
            sock.close()
        _wait_for(lambda: budget.used == 0, "the held bodies' bytes given back")
        answer = httpx.post(f"{url}/predict", json=plot)
    assert answer.status_code == 200, answer.text


def test_a_request_over_the_connection_cap_gets_503_in_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol.HeaderDeadlineProtocol, "header_timeout_s", 60.0)  # idle ones stay open
    app = create_app(HeldPredictor(), ProjectPaths(tmp_path), warm_up=False)
    with _running(app, max_connections=2) as (url, server):
        connections = server.server_state.connections
        idle = [socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) for _ in range(2)]
        _wait_for(lambda: len(connections) == 2, "two idle connections open")
        refused = httpx.get(f"{url}/health")
        idle.pop().close()
        _wait_for(lambda: len(connections) == 1, "one idle connection closed")
        answered = httpx.get(f"{url}/health")
        idle.pop().close()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert refused.json() == {"error": "the server has 2 connections open already; try again shortly"}
    assert answered.status_code == 200


def test_uvicorns_400_hook_is_still_what_the_protocol_overrides() -> None:
    """protocol.HeaderDeadlineProtocol was written for uvicorn 0.54.0 (requirements.lock): it
    overrides ``H11Protocol.send_400_response(msg)``, which uvicorn calls on a request h11 cannot
    parse and does not document. An upgrade that renames it, changes its arguments or stops
    calling it fails here, by name, before the tests below fail on a plain-text answer."""
    import inspect

    from uvicorn.protocols.http.h11_impl import H11Protocol

    assert list(inspect.signature(H11Protocol.send_400_response).parameters) == ["self", "msg"], (
        "uvicorn changed send_400_response: check moviegenre/serve/protocol.py against it"
    )
    assert "self.send_400_response(" in inspect.getsource(H11Protocol.handle_events), (
        "uvicorn no longer calls send_400_response on a bad request: check moviegenre/serve/protocol.py"
    )


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /health HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n", b"HELLO\r\n\r\n",
     b"GET /health HTTP/1.1\r\nHost: localhost\r\nX: " + b"a" * 20_000],  # unfinished, past h11's 16 KB
    ids=["header-without-colon", "no-request-line", "unfinished-headers-over-16-kb"],
)  # fmt: skip
def test_a_request_h11_cannot_parse_gets_400_in_json(served: tuple[str, HeldPredictor], request_bytes: bytes) -> None:
    """uvicorn answers these before the application sees them; the protocol's send_400_response
    (a method of uvicorn 0.54.0's H11Protocol, pinned in requirements.lock) makes the answer JSON.
    An upgrade that stops calling it answers plain text again, and this fails."""
    port = int(served[0].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(request_bytes)
        data, _ = _answer(client, wait_s=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert body == b'{"error":"not a valid HTTP/1.1 request (malformed request line or headers)"}'


@pytest.mark.parametrize("host", ["localhost:evil.com", "localhost:", "localhost:80:80", "localhost@evil.com",
                                  "[::1]evil", "evil.com", "localhost.", ""])  # fmt: skip
def test_a_host_header_that_is_not_host_and_digits_is_refused(served: tuple[str, HeldPredictor], host: str) -> None:
    answer = httpx.get(f"{served[0]}/health", headers={"host": host})
    assert answer.status_code == 400
    assert answer.json() == {"error": f"Host {host!r} is not one this server answers to (--allowed-host)"}


@pytest.mark.parametrize("host", ["localhost:8000", "LOCALHOST", "127.0.0.1:1", "[::1]:8000", "[::1]"])
def test_the_local_names_with_or_without_a_port_are_answered(served: tuple[str, HeldPredictor], host: str) -> None:
    assert httpx.get(f"{served[0]}/health", headers={"host": host}).status_code == 200


def test_host_name_parses_host_and_port_strictly() -> None:
    assert host_name("LocalHost:8000") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("example.com") == "example.com"
    assert [host_name(h) for h in ("localhost:evil.com", "a:1:2", "[::1]x", "a b", "localhost:123456")] == [None] * 5


@pytest.mark.parametrize(
    ("request_kwargs", "error"),
    [
        ({"content": b'{"plot": "\\ud800x"}', "headers": {"content-type": "application/json"}},
         "the plot is not UTF-8 text: character 1 is U+D800, a lone surrogate"),
        ({"json": {"plot": "\u200b\u200b\u200b"}}, "the plot is empty"),
        ({"json": {"plot": "\x00\x00\x00"}}, "the plot is empty"),
        ({"data": {"plot": "\u200b\ufeff\u2060 \u00a0"}}, "the plot is empty"),
    ],
    ids=["lone-surrogate", "zero-width-spaces", "nuls", "form-of-invisible-characters"],
)  # fmt: skip
def test_a_plot_that_is_not_text_or_shows_nothing_is_400(
    served: tuple[str, HeldPredictor], request_kwargs: dict, error: str
) -> None:
    answer = httpx.post(f"{served[0]}/predict", **request_kwargs)
    assert (answer.status_code, answer.json()) == (400, {"error": error})
    assert not served[1].busy.is_set()  # refused before the predictor


class FailingPredictor(HeldPredictor):
    def predict(self, posters: list[str | None], plots: list[str | None]) -> dict[str, np.ndarray]:
        raise RuntimeError("tensor conversion failed in /srv/secret/model.keras")


def test_a_failed_prediction_is_500_without_the_exception_and_the_log_has_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(FailingPredictor(), ProjectPaths(tmp_path), warm_up=False)
    with _running(app) as (url, _):
        answer = httpx.post(f"{url}/predict", json={"plot": "a plot"})
    assert (answer.status_code, answer.json()) == (500, {"error": INTERNAL_ERROR})
    assert "secret" not in answer.text and "RuntimeError" not in answer.text
    assert "/srv/secret/model.keras" in caplog.text


def test_an_unexpected_error_anywhere_is_500_in_json_without_the_exception(served: tuple[str, HeldPredictor]) -> None:
    """A predictor whose genres disagree with its scores fails after the prediction, outside its handler."""
    url, predictor = served
    predictor.release.set()
    predictor.genres = GENRES[:1]
    answer = httpx.post(f"{url}/predict", json={"plot": "a plot"})
    assert (answer.status_code, answer.json()) == (500, {"error": INTERNAL_ERROR})
    assert "IndexError" not in answer.text


def test_openapi_documents_every_route_status_and_error_body(tmp_path: Path) -> None:
    """Generated from serve.models: every route lists what the middleware and uvicorn may answer
    before it runs, each error as ErrorBody, and no 422 (a bad query parameter is answered 400)."""
    spec = create_app(HeldPredictor(), ProjectPaths(tmp_path), warm_up=False).openapi()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    assert set(spec["paths"]) == {"/", "/health", "/predict"}
    any_route = {"200", "400", "408", "500", "503", "default"}
    expected = {"/": any_route, "/health": any_route, "/predict": any_route | {"413", "415"}}
    for path, methods in spec["paths"].items():
        (responses,) = [operation["responses"] for operation in methods.values()]
        assert set(responses) == expected[path], path
        for status, response in responses.items():
            assert response["description"], (path, status)
            if status != "200":
                assert response["content"] == error, (path, status)
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == (
        "#/components/schemas/Prediction"
    )


def test_the_page_is_the_packaged_static_file(served: tuple[str, HeldPredictor]) -> None:
    import tomllib

    from helpers import PROJECT_ROOT

    from moviegenre.serve.page import page_html

    package_data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "serve/static/index.html" in package_data["moviegenre"]  # shipped in the wheel, not only in a checkout
    answer = httpx.get(f"{served[0]}/")
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.text == page_html() and '<form id="movie">' in answer.text
