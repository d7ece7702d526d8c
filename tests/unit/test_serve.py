"""`moviegenre serve` over a tiny pipeline's artifacts: health, predictions, bad requests, the page.

The artifacts are built in-process (prepare, featurize, embed with a one-layer BERT, five
branches, the ensemble: about half a minute), then the real server runs as a subprocess on
a free port, as a user would start it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import PROJECT_ROOT
from helpers.tiny_project import BRANCHES, copy_of_tiny_project

PLOT_BRANCHES = ["text_ml", "text_dl", "text_encoder"]
SCORED_BY = ["image_ml", "image_dl", *PLOT_BRANCHES]  # poster branches first, as the CLI prints them
MAX_UPLOAD_MB = 0.1  # small, so that the 413 tests need only a small body
PLOT = "ghost blood scream haunted night"


@pytest.fixture(scope="module")
def project(trained_tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project directory holding every artifact `moviegenre serve` loads, from 90 generated movies."""
    yield copy_of_tiny_project(trained_tiny_project, tmp_path_factory.mktemp("serve") / "project")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    """`moviegenre serve` on a free port over the project's artifacts; yields its URL."""
    port = _free_port()
    command = [sys.executable, "-m", "moviegenre.cli", "serve", "--port", str(port),
               "--max-upload-mb", str(MAX_UPLOAD_MB)]  # fmt: skip
    log = (project / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=project, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, project / "server.log")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def predictor(project: Path) -> Any:
    """The same artifacts loaded in this process, to compare the server's answers with."""
    from moviegenre.core.paths import ProjectPaths
    from moviegenre.predict.predictor import Predictor

    return Predictor(ProjectPaths(project))


def _poster(seed: int = 7) -> bytes:
    from helpers.synthetic import poster_bytes

    return poster_bytes(["Horror"], seed)


def _genres(project: Path) -> list[str]:
    return json.loads((project / "data" / "prepared" / "genres.json").read_text())["genres"]


def test_health_names_the_genres_branches_and_models(server: str, project: Path) -> None:
    health = httpx.get(f"{server}/health").json()
    assert health["status"] == "ok"
    assert health["genres"] == len(_genres(project))
    assert health["branches"] == BRANCHES
    assert set(health["models"]) == {*BRANCHES, "ensemble"}
    assert all(len(fingerprint) == 16 for fingerprint in health["models"].values())
    assert health["max_upload_mb"] == MAX_UPLOAD_MB


def test_plot_only_gives_the_predictors_genres_and_probabilities(server: str, project: Path, predictor: Any) -> None:
    answer = httpx.post(f"{server}/predict", data={"plot": PLOT})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["seen"] == "plot only" and body["branches"] == PLOT_BRANCHES
    scores = predictor.predict([None], [PLOT])
    in_set = predictor.genre_sets(scores)[0]
    genres = _genres(project)
    expected = dict(zip(genres, scores["ensemble"][0], strict=True))
    assert list(body["probabilities"]) == sorted(genres, key=lambda g: -expected[g])
    np.testing.assert_allclose([body["probabilities"][g] for g in genres], scores["ensemble"][0], atol=1e-6)
    assert set(body["genres"]) == {g for g, on in zip(genres, in_set, strict=True) if on}
    assert "by_branch" not in body
    as_json = httpx.post(f"{server}/predict", json={"plot": PLOT}).json()  # the JSON body gives the same
    assert as_json["genres"] == body["genres"]
    np.testing.assert_allclose(list(as_json["probabilities"].values()), list(body["probabilities"].values()),
                               atol=1e-6)  # fmt: skip


def test_poster_and_plot_are_scored_by_every_branch(server: str, project: Path, predictor: Any) -> None:
    files = {"poster": ("poster.jpg", _poster(), "image/jpeg")}
    answer = httpx.post(f"{server}/predict?branches=true&top=3", data={"plot": PLOT}, files=files)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["seen"] == "poster and plot" and body["branches"] == SCORED_BY
    assert len(body["probabilities"]) == 3
    assert set(body["by_branch"]) == set(BRANCHES)
    assert all(list(p) == list(body["probabilities"]) for p in body["by_branch"].values())
    (project / "poster.jpg").write_bytes(_poster())
    scores = predictor.predict([str(project / "poster.jpg")], [PLOT])
    top = max(body["probabilities"], key=body["probabilities"].get)
    g = _genres(project).index(top)
    assert body["probabilities"][top] == pytest.approx(scores["ensemble"][0, g], abs=1e-6)
    assert body["by_branch"]["image_ml"][top] == pytest.approx(scores["image_ml"][0, g], abs=1e-6)


def test_a_poster_alone_is_scored_by_the_poster_branches(server: str) -> None:
    answer = httpx.post(f"{server}/predict", files={"poster": ("p.jpg", _poster(3), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["seen"] == "poster only"
    assert answer.json()["branches"] == ["image_ml", "image_dl"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server: str) -> None:
    import asyncio

    plots = ["love kiss wedding", PLOT, "gun chase police", "laugh joke party"]

    async def ask() -> list[dict]:
        async with httpx.AsyncClient(base_url=server, timeout=60) as client:
            answers = await asyncio.gather(*(client.post("/predict", data={"plot": p}) for p in plots * 3))
        return [a.json() for a in answers]

    together = asyncio.run(ask())
    alone = {p: httpx.post(f"{server}/predict", data={"plot": p}).json() for p in plots}
    for plot, answer in zip(plots * 3, together, strict=True):
        assert answer["genres"] == alone[plot]["genres"]
        np.testing.assert_allclose(list(answer["probabilities"].values()),
                                   list(alone[plot]["probabilities"].values()), atol=1e-6)  # fmt: skip


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 4096 + 1):
        yield b"\0" * 4096


@pytest.mark.parametrize(
    ("request_kwargs", "status", "error"),
    [
        ({"data": {}}, 400, "give a poster (file) and/or a plot (text)"),
        ({"data": {"plot": "   "}}, 400, "the plot is empty"),
        ({"json": {"plot": ""}}, 400, "the plot is empty"),
        ({"json": {"plot": "\u200b\u200b\u200b"}}, 400, "the plot is empty"),
        ({"content": b'{"plot": "\\ud800x"}', "headers": {"content-type": "application/json"}}, 400,
         "the plot is not UTF-8 text: character 1 is U+D800, a lone surrogate"),
        ({"json": {"poster": "x"}}, 400, 'a JSON body is {"plot": "..."} (send a poster as a multipart form)'),
        ({"files": {"poster": ("p.jpg", b"not a jpeg at all", "image/jpeg")}}, 400,
         "poster: not a readable image (not an image)"),
        ({"files": {"poster": ("p.jpg", b"", "image/jpeg")}, "data": {"plot": PLOT}}, 400,
         "poster: not a readable image (empty file)"),
        ({"data": {"plot": PLOT, "title": "x"}}, 400, "unknown form field(s): title (expected poster, plot)"),
        ({"content": b"plot", "headers": {"content-type": "text/plain"}}, 415,
         'send a multipart form (poster, plot) or a JSON body {"plot": "..."}'),
        ({"files": {"poster": ("big.jpg", b"\0" * 200_000, "image/jpeg")}}, 413,
         "request body over the 0.1 MB limit (--max-upload-mb)"),
        ({"content": _chunks(300_000), "headers": {"content-type": "application/json"}}, 413,
         "request body over the 0.1 MB limit (--max-upload-mb)"),
    ],
    ids=["nothing", "blank-plot", "blank-json-plot", "zero-width-plot", "lone-surrogate", "json-poster", "not-an-image",
         "empty-poster", "unknown-field", "plain-text", "over-limit", "over-limit-chunked"],
)  # fmt: skip
def test_bad_requests_are_4xx_with_one_error(server: str, request_kwargs: dict, status: int, error: str) -> None:
    answer = httpx.post(f"{server}/predict", **request_kwargs)
    assert answer.status_code == status
    assert answer.json() == {"error": error}


DEEP_JSON = b'{"plot": ' + b"[" * 2000 + b"]" * 2000 + b"}"  # 4 KB that a recursive parser chokes on


@pytest.mark.parametrize(
    ("method", "path", "request_kwargs", "status", "error"),
    [
        ("POST", "/predict", {"content": DEEP_JSON, "headers": {"content-type": "application/json"}}, 400,
         "the JSON body nests deeper than 32 levels"),
        ("POST", "/predict", {"files": [("poster", ("a.jpg", b"x", "image/jpeg"))] * 2}, 400,
         "one poster per request, not 2"),
        ("POST", "/predict", {"content": b"--x--", "headers": {"content-type": "multipart/form-data"}}, 400,
         "Missing boundary in multipart."),
        ("GET", "/predict", {}, 405, "Method Not Allowed"),
        ("GET", "/nowhere", {}, 404, "Not Found"),
        ("GET", "/health", {"headers": {"host": "rebound.example:8000"}}, 400,
         "Host 'rebound.example:8000' is not one this server answers to (--allowed-host)"),
        ("GET", "/health", {"headers": {"host": "localhost:evil.com"}}, 400,
         "Host 'localhost:evil.com' is not one this server answers to (--allowed-host)"),
    ],
    ids=["deep-json", "two-posters", "no-boundary", "method", "route", "foreign-host", "name-for-a-port"],
)  # fmt: skip
def test_every_error_is_the_documented_json(
    server: str, method: str, path: str, request_kwargs: dict, status: int, error: str
) -> None:
    answer = httpx.request(method, server + path, **request_kwargs)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    if status == 405:
        assert answer.headers["allow"] == "POST"


def test_localhost_names_are_answered(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(f"{server}/health", headers={"host": host}).status_code == 200, host


def test_json_depth_skips_brackets_inside_strings() -> None:
    from moviegenre.serve.reading import json_depth

    assert json_depth(b'{"plot": "[[[[ {{{{ \\" ]]"}') == 1
    assert json_depth(b"[[[]]]") == 3 and json_depth(b'"no nesting"') == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-upload-mb", "nan"], "--max-upload-mb must be a number of MB from 0.001 to 1000, not nan"),
        (["--max-upload-mb", "inf"], "--max-upload-mb must be a number of MB from 0.001 to 1000, not inf"),
        (["--max-upload-mb", "1e308"], "--max-upload-mb must be a number of MB from 0.001 to 1000, not 1e+308"),
        (["--max-inflight-mb", "5"],
         "--max-inflight-mb must be a number of MB from --max-upload-mb (10) to 100000, not 5"),
        (["--max-connections", "0"], "--max-connections must be 1-"),
        (["--allowed-host", "localhost:evil.com"],
         "--allowed-host 'localhost:evil.com': not a host name or address (give no port or scheme)"),
        (["--host", b"\xff"], "--host '\\udcff': not an address to listen on"),
        (["--port", "99999"], "--port must be 1-65535, not 99999"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_before_any_model_loads(tmp_path: Path, args: list[str | bytes], message: str) -> None:
    """In a directory with no artifacts: the option's error comes first, not the missing models'."""
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", "serve", *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 2 and line.startswith(f"error: {message}"), done.stderr


def test_a_port_in_use_is_one_line_before_any_model_loads(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "moviegenre.cli", "serve", "--port", str(port)], cwd=tmp_path,
                              env=_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1] == f"error: 127.0.0.1:{port}: cannot listen there (Address already in use)"
    )


def test_sigterm_with_a_slow_client_exits_within_the_shutdown_deadline(project: Path) -> None:
    from moviegenre.serve.limits import SHUTDOWN_S

    port = _free_port()
    command = [sys.executable, "-m", "moviegenre.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=project, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", process)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")  # fmt: skip  # then nothing more: a body that trickles
        time.sleep(0.5)
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=SHUTDOWN_S + 20)
        took = time.monotonic() - began
        slow.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert took < SHUTDOWN_S + 5, f"{took:.1f} s after SIGTERM"
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "Traceback" not in stderr and "ClientDisconnect" not in stderr, stderr[-2000:]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}


def _wait_until_up(url: str, process: subprocess.Popen, log: Path | None = None) -> None:
    """Until ``/health`` answers 200; a server that exits or takes over 180 s fails the test (with its log)."""

    def tail() -> str:
        return log.read_text()[-3000:] if log is not None and log.is_file() else ""

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited:\n{tail()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"server not up:\n{tail()}")


def test_top_must_not_be_negative(server: str) -> None:
    answer = httpx.post(f"{server}/predict?top=-1", data={"plot": PLOT})
    assert answer.status_code == 400
    assert answer.json() == {"error": "top must be 0 (all genres) or a positive number, not -1"}


def test_serve_without_artifacts_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "moviegenre.cli", "serve", "--port", str(_free_port())],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == "error: data/prepared/genres.json: not found (run `dvc repro prepare`)"


@pytest.mark.browser
def test_the_page_predicts_in_a_real_browser(server: str, project: Path) -> None:
    from helpers.browser import browser_page

    (project / "poster.jpg").write_bytes(_poster())
    with browser_page() as page:
        page.goto(server + "/")
        page.fill("#plot", PLOT)
        page.set_input_files("#poster", str(project / "poster.jpg"))
        page.check("#branches")
        page.click("button[type=submit]")
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        assert page.inner_text("#scored") == "poster and plot: scored by " + ", ".join(SCORED_BY)
        header = page.inner_text("#table tr:first-child")
        assert all(branch in header for branch in BRANCHES)
        assert len(page.query_selector_all("#table tr")) == 1 + len(_genres(project))
        # the poster scored is shown, decoded by the browser from the file sent
        page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=10_000)
        assert page.is_visible("#preview")
        # the table scrolls inside its box: the page is never wider than the window
        page.set_viewport_size({"width": 420, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        assert page.evaluate("getComputedStyle(document.getElementById('table-box')).overflowX") == "auto"
        genre_set = page.inner_text("#genres")
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)
        page.fill("#plot", "")
        page.set_input_files("#poster", [])
        page.click("button[type=submit]")
        page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
        assert page.inner_text("#error") == "give a poster (file) and/or a plot (text)"
        assert page.is_hidden("#result")
        assert page.errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    answer = httpx.post(f"{server}/predict", data={"plot": PLOT}, files={"poster": _poster()}).json()
    assert genre_set == (", ".join(answer["genres"]) or "(none above its threshold)")


def test_openapi_documents_both_bodies_and_no_page_needs_a_cdn(server: str) -> None:
    spec = httpx.get(f"{server}/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert set(body["multipart/form-data"]["schema"]["properties"]) == {"poster", "plot"}
    assert body["application/json"]["schema"]["required"] == ["plot"]
    for page in ("/docs", "/redoc"):  # Swagger UI and ReDoc come from a CDN: off
        assert httpx.get(server + page).status_code == 404


def test_the_answers_are_what_openapi_describes(server: str) -> None:
    """serve.models generate /openapi.json; the answers must fit them, with no key they do not name."""
    from moviegenre.serve.models import ErrorBody, Health, Prediction

    Health.model_validate(httpx.get(f"{server}/health").json())
    files = {"poster": ("poster.jpg", _poster(), "image/jpeg")}
    Prediction.model_validate(httpx.post(f"{server}/predict?branches=true", data={"plot": PLOT}, files=files).json())
    Prediction.model_validate(httpx.post(f"{server}/predict", json={"plot": PLOT}).json())
    ErrorBody.model_validate(httpx.post(f"{server}/predict", data={}).json())


def test_prediction_loads_no_training_code(project: Path) -> None:
    """Branch classes are imported by name, so the import contracts cannot see this: check it at run time."""
    script = (
        "import sys\n"
        "from moviegenre.core.paths import ProjectPaths\n"
        "from moviegenre.predict.predictor import Predictor\n"
        "predictor = Predictor(ProjectPaths(__import__('pathlib').Path('.')))\n"
        "scores = predictor.predict([None], ['ghost blood scream'])\n"
        "assert {'text_dl', 'text_encoder'} <= set(scores), sorted(scores)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dvclive'\n"
        "      or m in ('moviegenre.branches.keras.trainer', 'moviegenre.branches.training')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
