"""`moviegenre serve`: the trained pipeline behind HTTP, loaded once.

The artifacts (branches, featurizers, ensemble) load at startup, before the port opens, and
one warm-up prediction traces what TensorFlow traces on first use, so the first request
costs what every later one does. Then:

- ``POST /predict``: a multipart form with a ``poster`` file and/or a ``plot`` field (or a
  JSON body ``{"plot": "..."}``) gives what ``moviegenre predict`` prints: the branches that
  scored the movie, its genre set (at the thresholds fitted on val for those branches) and
  each genre's ensemble probability; ``?branches=true`` adds each branch's, ``?top=N`` keeps
  the N most probable genres.
- ``GET /health``: the genres, the branches loaded, fingerprints of the models and the git
  commit.
- ``GET /``: a page to upload a poster and paste a plot.

Every 4xx and 5xx answer is ``{"error": "..."}``: no poster and no plot, a plot with nothing
visible in it or that is not Unicode text, a poster that is not an image, a body over
``--max-upload-mb`` (413, for a form's parts and a JSON body alike), JSON nested deeper than
``MAX_JSON_DEPTH``, a second poster or plot, an unknown route (404) or method (405), a Host
header the server does not answer to (400: a page on another origin that resolves to this
address cannot call it), a request h11 cannot parse (400, see ``http_protocol``), a full queue,
a full in-flight budget or too many connections (503 with ``Retry-After``). A 500 says only
that something failed: what failed goes to the log, never to the client.

What a request costs the server is bounded: the body by ``--max-upload-mb``, the bodies of all
requests being received or answered together by ``--max-inflight-mb`` (``InflightBytes``),
open connections by ``--max-connections``, its headers in time
(``http_protocol.HEADER_TIMEOUT_S``) and its body too (``BODY_TIMEOUT_S``; both 408), poster
checks run on ``CHECK_THREADS`` threads off the event loop (a huge image cannot stall
``/health``), at most ``MAX_QUEUE`` movies wait for the predictor, and on SIGTERM open
connections get ``SHUTDOWN_S`` seconds before the server exits anyway. The options are checked
before the models load (a port in use, or a limit out of range, is one line, not a traceback
after the load).

Predictions run one at a time on one worker thread. TensorFlow already spreads one
prediction over every core, so two at once would not finish sooner, and neither the Keras
models nor the predictor's lazily filled caches are documented as safe to call from several
threads at once. Requests that arrive while a prediction runs wait in a queue and go
together into the next ``Predictor.predict`` call (up to ``MAX_BATCH``), which costs little
more than one movie: that is where the throughput comes from. A movie's probabilities do
not depend on the others in its batch beyond float rounding (about 1e-7).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import resource
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from moviegenre.cli.http_protocol import RETRY_AFTER_S
from moviegenre.core.digests import file_digests
from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.posters import poster_problem
from moviegenre.predict.answer import movie_json, seen_text
from moviegenre.predict.inputs import MAX_POSTER_MB, PlotTooLong, check_plot

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = MAX_POSTER_MB  # `moviegenre predict --poster` takes the same posters
UPLOAD_MB_RANGE = (0.001, 1000.0)  # --max-upload-mb: a kilobyte at least, a gigabyte at most
MAX_INFLIGHT_MB = 100.0  # request bodies held at once, all connections together (or --max-upload-mb if larger)
MAX_INFLIGHT_MB_BOUND = 100_000.0  # --max-inflight-mb at most: beyond it the cap is no cap
MAX_CONNECTIONS = 128  # open connections (uvicorn's limit_concurrency); a request on one more gets 503
FILES_RESERVED = 64  # file descriptors the server keeps for itself (models, uploads, logs) under ulimit -n
MAX_BATCH = 16  # movies per Predictor.predict call, from requests that queued up meanwhile
MAX_QUEUE = 64  # movies waiting for the predictor; one more is answered 503
MAX_JSON_DEPTH = 32  # nesting of a JSON body ({"plot": "..."} needs 1)
CHECK_THREADS = 2  # posters decoded for their check at once, off the event loop
SHUTDOWN_S = 5  # on SIGTERM, how long open connections may take before the server exits
BODY_TIMEOUT_S = 60.0  # a request's whole body, from its headers: --max-upload-mb at 170 KB/s or faster
KEEP_ALIVE_S = 5
INTERNAL_ERROR = "the server failed to answer this request; its log says why"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WARM_UP_PLOT = "A young woman moves to a haunted house where her family is killed one by one."


@dataclass
class Scored:
    """One movie's result, as the worker computed it (arrays by genre, in vocabulary order)."""

    branches: list[str]
    in_set: np.ndarray
    ensemble: np.ndarray
    by_branch: dict[str, np.ndarray]


@dataclass
class _Job:
    poster: str | None
    plot: str | None
    future: asyncio.Future[Scored]


@dataclass
class Batcher:
    """One prediction at a time on one thread, with the requests that queued meanwhile batched in."""

    predict: Callable[[list[str | None], list[str | None]], list[Scored]]
    max_batch: int = MAX_BATCH
    queue: asyncio.Queue[_Job] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUE))
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
    )
    done: int = 0

    async def submit(self, poster: str | None, plot: str | None) -> Scored:
        """The movie's result; ``asyncio.QueueFull`` at once when ``MAX_QUEUE`` movies already wait."""
        future: asyncio.Future[Scored] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Job(poster, plot, future))
        return await future

    async def run(self) -> None:
        """Take what is queued (at least one request), predict it in one call, hand out the rows."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            while len(jobs) < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            jobs = [job for job in jobs if not job.future.done()]  # clients that gave up
            if not jobs:
                continue
            results = await loop.run_in_executor(self.executor, self._predict_each, jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self.done += len(jobs)

    def _predict_each(self, jobs: list[_Job]) -> list[Scored | BaseException]:
        """The batch in one call; if it fails, each movie alone, so that one bad movie fails alone."""
        try:
            return list(self.predict([j.poster for j in jobs], [j.plot for j in jobs]))
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        results: list[Scored | BaseException] = []
        for job in jobs:
            try:
                results.extend(self.predict([job.poster], [job.plot]))
            except Exception as exc:
                results.append(exc)
        return results


def scorer(predictor: Any) -> Callable[[list[str | None], list[str | None]], list[Scored]]:
    """``Predictor.predict`` for a batch, cut into one ``Scored`` per movie."""
    from moviegenre.predict.predictor import branches_used

    def predict(posters: list[str | None], plots: list[str | None]) -> list[Scored]:
        scores = predictor.predict(posters, plots)
        sets = predictor.genre_sets(scores)
        results = []
        for row in range(len(posters)):
            used = branches_used(scores, row)
            by_branch = {b: scores[b][row] for b in used}
            results.append(Scored(used, sets[row], scores["ensemble"][row], by_branch))
        return results

    return predict


def model_fingerprints(paths: ProjectPaths, names: list[str]) -> dict[str, str]:
    """sha256 (16 hex digits) of each model directory's files, so /health says which models answer."""
    return {
        name: hashlib.sha256(json.dumps(file_digests(paths.model(name)), sort_keys=True).encode()).hexdigest()[:16]
        for name in names
    }


def git_commit(root: Path) -> str | None:
    """The checkout's commit, or None outside git (a copy, a container)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def warm_up_poster(directory: Path) -> Path:
    from PIL import Image

    path = directory / "warm-up.jpeg"
    Image.new("RGB", (64, 96), (120, 30, 40)).save(path, format="JPEG")
    return path


class InflightBytes:
    """The body bytes of every request being received or answered, summed over all connections,
    against one cap. ``--max-upload-mb`` bounds one body; without this, a hundred clients that
    each hold a near-limit body open hold a hundred bodies in the server's memory."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, count: int) -> bool:
        """Reserve ``count`` more bytes; False (nothing reserved) when that would pass the cap."""
        if self.used + count > self.limit:
            return False
        self.used += count
        return True

    def give(self, count: int) -> None:
        self.used -= count


class BodyLimit:
    """Bound a request body in size and time: 413 when it is over ``max_bytes`` (at once when
    Content-Length says so, else as soon as that many bytes have arrived: a chunked upload), 408
    when it is not all there ``timeout_s`` after its headers (a client sending a byte a second).

    Its bytes count against ``inflight`` from its headers (the Content-Length it declares) or as
    they arrive (a chunked body) until the request is answered: a request that would pass the
    cap gets 503 with ``Retry-After``, at once when its Content-Length says so."""

    def __init__(self, app: Any, max_bytes: int, inflight: InflightBytes, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app, self.max_bytes, self.inflight, self.timeout_s = app, max_bytes, inflight, timeout_s

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over the {self.max_bytes / 1e6:g} MB limit (--max-upload-mb)"
        busy = (f"the server is receiving {self.inflight.limit / 1e6:g} MB of requests already (--max-inflight-mb); "
                "try again shortly")  # fmt: skip
        length = dict(scope["headers"]).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else 0
        if declared > self.max_bytes:
            await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
            return
        if not self.inflight.take(declared):
            log.warning("in-flight request bodies at the %g MB cap: answered 503", self.inflight.limit / 1e6)
            retry = {"Retry-After": str(RETRY_AFTER_S)}
            await JSONResponse({"error": busy}, status_code=503, headers=retry)(scope, receive, send)
            return
        received, reserved, complete = 0, declared, False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited() -> dict:
            nonlocal received, reserved, complete
            if complete:  # after the body, receive() only waits for the client to go away
                return await receive()
            try:
                event = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise HTTPException(408, f"request body not complete within {self.timeout_s:g} s") from None
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                complete = not event.get("more_body", False)
                if received > self.max_bytes:
                    raise HTTPException(413, message)
                if received > reserved:  # a chunked body, or more than its Content-Length said
                    if not self.inflight.take(received - reserved):
                        raise HTTPException(503, busy, headers={"Retry-After": str(RETRY_AFTER_S)})
                    reserved = received
            return event

        try:
            await self.app(scope, limited, send)
        finally:  # the body is held until the answer is sent (the request keeps it)
            self.inflight.give(reserved)


# A Host header (RFC 9110 7.2): a name, an IPv4 address or a bracketed IPv6 one, then perhaps
# ":" and a port of digits. Nothing else: "localhost:evil.com" names no host this server is.
_HOST_NAME = r"[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\]"
_HOST_HEADER = re.compile(rf"(?P<name>{_HOST_NAME})(?::[0-9]{{1,5}})?")
_ALLOWED_HOST = re.compile(rf"{_HOST_NAME}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")  # an IPv6 address without brackets too


def host_name(header: str) -> str | None:
    """The host a Host header names (lower case, an IPv6 address without its brackets), or None
    when the header is not a host with perhaps a port of digits."""
    match = _HOST_HEADER.fullmatch(header)
    return match["name"].lower().strip("[]") if match else None


class HostCheck:
    """Answer only requests whose Host header names an allowed host ("*": any), so that a page
    on another origin whose name resolves to this address (DNS rebinding) gets 400, not genres."""

    def __init__(self, app: Any, allowed: tuple[str, ...]) -> None:
        self.app, self.allowed = app, {host.lower().strip("[]") for host in allowed}

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] == "http" and "*" not in self.allowed:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip()
            if host_name(header) not in self.allowed:
                message = f"Host {header!r} is not one this server answers to (--allowed-host)"
                await JSONResponse({"error": message}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def allowed_hosts(host: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The Host names the server answers to: the bind address, localhost's names and ``extra``."""
    bound = () if host in ("0.0.0.0", "::") else (host,)
    return tuple(dict.fromkeys((*bound, *LOCAL_HOSTS, *extra)))


def create_app(
    predictor: Any, paths: ProjectPaths, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, warm_up: bool = True,
    hosts: tuple[str, ...] = LOCAL_HOSTS, max_queue: int = MAX_QUEUE, body_timeout_s: float = BODY_TIMEOUT_S,
    max_inflight_mb: float | None = None,
) -> FastAPI:  # fmt: skip
    """The FastAPI application over a loaded ``Predictor`` (both modalities)."""
    scratch = tempfile.TemporaryDirectory(prefix="moviegenre-serve-")
    uploads = Path(scratch.name)
    batcher = Batcher(scorer(predictor), queue=asyncio.Queue(max_queue))
    started = time.time()
    models = [*predictor.branches, "ensemble"]
    health = {
        "status": "ok",
        "genres": len(predictor.genres),
        "branches": list(predictor.branches),
        "ensemble": {
            "method": predictor.ensemble.method,
            "average": predictor.ensemble.average,
            "branches": list(predictor.ensemble.branches),
        },
        "models": model_fingerprints(paths, models),
        "git_commit": git_commit(paths.root),
        "max_upload_mb": max_upload_mb,
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:  # traces the encoder and makes oneDNN's kernels: the first request should not pay
            loop = asyncio.get_running_loop()
            poster = str(warm_up_poster(uploads))
            began = time.perf_counter()
            plots: list[str | None] = [WARM_UP_PLOT, WARM_UP_PLOT]
            await loop.run_in_executor(batcher.executor, batcher.predict, [poster, None], plots)
            log.info("warm-up prediction: %.1f s", time.perf_counter() - began)
        worker = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            worker.cancel()
            checker.shutdown(wait=False, cancel_futures=True)
            batcher.executor.shutdown(wait=True)
            scratch.cleanup()

    # no /docs or /redoc: both load Swagger UI or ReDoc from a CDN, blank offline; /openapi.json
    # documents every route, the two request bodies of POST /predict included
    app = FastAPI(
        title="moviegenre", summary="Genres of a movie from its poster and plot", lifespan=lifespan,
        docs_url=None, redoc_url=None,
    )  # fmt: skip
    max_bytes = int(max_upload_mb * 1e6)
    app.state.inflight = InflightBytes(int(inflight_mb(max_upload_mb, max_inflight_mb) * 1e6))
    app.add_middleware(BodyLimit, max_bytes=max_bytes, inflight=app.state.inflight, timeout_s=body_timeout_s)
    app.add_middleware(HostCheck, allowed=hosts)
    checks = asyncio.Semaphore(CHECK_THREADS)
    checker = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="poster-check")

    @app.exception_handler(StarletteHTTPException)  # FastAPI's, and Starlette's own 404, 405, multipart 400
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @app.exception_handler(Exception)  # anything else: Starlette re-raises it after this answer, and uvicorn logs it
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": INTERNAL_ERROR}, status_code=500)

    @app.get("/health")
    async def health_check() -> dict[str, Any]:
        return health | {"uptime_s": round(time.time() - started, 1), "predictions": batcher.done}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY}, responses=PREDICT_RESPONSES)
    async def predict(request: Request, branches: bool = False, top: int = 0) -> Any:
        if top < 0:
            raise HTTPException(400, f"top must be 0 (all genres) or a positive number, not {top}")
        try:
            plot, upload = await _read_movie(request, max_bytes)
        except ClientDisconnect:
            log.info("a client went away before its request body arrived")
            return Response(status_code=400)
        except asyncio.CancelledError:  # the shutdown deadline passed while the body trickled in
            log.info("shutting down: dropped a request whose body had not arrived")
            return JSONResponse({"error": "the server is shutting down"}, status_code=503)
        poster = None
        try:
            if upload is not None:
                poster = uploads / f"{uuid.uuid4().hex}.img"
                with poster.open("wb") as out:
                    while block := await upload.read(1 << 20):
                        out.write(block)
                async with checks:  # decoding a huge image takes seconds: never on the event loop
                    problem = await asyncio.get_running_loop().run_in_executor(checker, poster_problem, poster)
                if problem:
                    reason = "empty file" if problem == "zero_bytes" else problem.replace("_", " ")
                    raise HTTPException(400, f"poster: not a readable image ({reason})")
            if plot is None and poster is None:
                raise HTTPException(400, "give a poster (file) and/or a plot (text)")
            try:
                scored = await batcher.submit(str(poster) if poster else None, plot)
            except asyncio.QueueFull:
                message = f"{max_queue} movies are waiting already; try again shortly"
                raise HTTPException(503, message, headers={"Retry-After": str(RETRY_AFTER_S)}) from None
            except MovieGenreError as exc:
                raise HTTPException(400, str(exc)) from exc
            except Exception:
                log.exception("prediction failed")
                raise HTTPException(500, INTERNAL_ERROR) from None
        finally:
            if poster is not None:
                poster.unlink(missing_ok=True)
        return result(predictor.genres, scored, poster is not None, plot is not None, branches, top)

    return app


def json_depth(raw: bytes) -> int:
    """How deeply ``raw``'s arrays and objects nest, counted without parsing (brackets inside
    strings skipped), so that a deep body is refused before the recursive parser sees it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def _read_movie(request: Request, max_bytes: int) -> tuple[str | None, UploadFile | None]:
    """The plot (None if not given) and the poster upload (None if not given) of a request."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        raw = await request.body()
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise HTTPException(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise HTTPException(400, f"the body is not valid JSON ({exc})") from exc
        if not isinstance(body, dict) or set(body) - {"plot"}:
            raise HTTPException(400, 'a JSON body is {"plot": "..."} (send a poster as a multipart form)')
        plot, upload = body.get("plot"), None
    elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        # a part may be as large as the whole body may; more than two parts cannot be a movie
        form = await request.form(max_files=2, max_fields=2, max_part_size=max_bytes)
        unknown = set(form) - {"plot", "poster"}
        if unknown:
            raise HTTPException(400, f"unknown form field(s): {', '.join(sorted(unknown))} (expected poster, plot)")
        for name in ("plot", "poster"):
            if len(form.getlist(name)) > 1:
                raise HTTPException(400, f"one {name} per request, not {len(form.getlist(name))}")
        plot, field = form.get("plot"), form.get("poster")
        if field is not None and not isinstance(field, UploadFile):
            raise HTTPException(400, "poster must be a file upload")
        upload = field
        if upload is not None and not upload.filename and not upload.size:
            upload = None  # a form's file input left empty
    elif not content_type and not await request.body():
        plot, upload = None, None  # an empty POST: say what to send, as for an empty form
    else:
        raise HTTPException(415, 'send a multipart form (poster, plot) or a JSON body {"plot": "..."}')
    if plot is not None:
        if not isinstance(plot, str):
            raise HTTPException(400, "plot must be text")
        try:
            check_plot(plot)
        except PlotTooLong as exc:
            raise HTTPException(413, str(exc)) from None
        except MovieGenreError as exc:
            raise HTTPException(400, str(exc)) from None
    return plot, upload


PREDICT_BODY: dict[str, Any] = {
    "required": True,
    "description": "A poster (file) and/or a plot (text): as a multipart form, or a JSON body with the plot alone.",
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "poster": {"type": "string", "format": "binary", "description": "A poster image (JPEG, PNG)."},
                    "plot": {"type": "string", "description": "The plot synopsis."},
                },
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"plot": {"type": "string", "description": "The plot synopsis."}},
                "required": ["plot"],
                "additionalProperties": False,
            }
        },
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}
}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The genre set, then the genres by ensemble probability (as `moviegenre predict --json`)."},
    400: {"description": "A bad poster or plot, or neither given; a malformed request.", **ERROR_SCHEMA},
    408: {"description": "The headers or the body did not arrive in time.", **ERROR_SCHEMA},
    413: {"description": "A body over --max-upload-mb, or a plot over 100,000 characters.", **ERROR_SCHEMA},
    415: {"description": "Neither a multipart form nor JSON.", **ERROR_SCHEMA},
    500: {"description": "The prediction failed; the server's log says why.", **ERROR_SCHEMA},
    503: {
        "description": "MAX_QUEUE movies wait already, --max-inflight-mb of bodies are arriving or "
        "--max-connections are open (see Retry-After), or the server is stopping.",
        **ERROR_SCHEMA,
    },
}


def result(
    genres: list[str], scored: Scored, poster: bool, plot: bool, with_branches: bool, top: int = 0
) -> dict[str, Any]:
    """What `moviegenre predict --json` prints for one movie."""
    return movie_json(
        genres, seen=seen_text(poster, plot), branches=scored.branches, in_set=scored.in_set,
        ensemble=scored.ensemble, by_branch=scored.by_branch if with_branches else None, top=top,
    )  # fmt: skip


def inflight_mb(max_upload_mb: float, max_inflight_mb: float | None) -> float:
    """The in-flight cap: ``--max-inflight-mb``, else ``MAX_INFLIGHT_MB`` or one whole body if larger."""
    return max(MAX_INFLIGHT_MB, max_upload_mb) if max_inflight_mb is None else max_inflight_mb


def most_connections() -> int:
    """The most connections ``ulimit -n`` leaves room for, beside the server's own files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 65535 if soft == resource.RLIM_INFINITY else max(1, min(65535, soft - FILES_RESERVED))


def check_options(
    host: str, port: int, max_upload_mb: float, max_inflight_mb: float | None = None,
    max_connections: int = MAX_CONNECTIONS, extra_hosts: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """Refuse bad options, and a port another process holds, before seconds of model loading."""
    low, high = UPLOAD_MB_RANGE
    if not (math.isfinite(max_upload_mb) and low <= max_upload_mb <= high):
        raise MovieGenreError(f"--max-upload-mb must be a number of MB from {low:g} to {high:g}, not {max_upload_mb:g}")
    if max_inflight_mb is not None and not (
        math.isfinite(max_inflight_mb) and max_upload_mb <= max_inflight_mb <= MAX_INFLIGHT_MB_BOUND
    ):
        raise MovieGenreError(f"--max-inflight-mb must be a number of MB from --max-upload-mb ({max_upload_mb:g}) "
                              f"to {MAX_INFLIGHT_MB_BOUND:g}, not {max_inflight_mb:g}")  # fmt: skip
    most = most_connections()
    if not 1 <= max_connections <= most:
        raise MovieGenreError(f"--max-connections must be 1-{most} (the open-file limit, ulimit -n, "
                              f"less {FILES_RESERVED} for the server's own files), not {max_connections}")  # fmt: skip
    for extra in extra_hosts:
        if extra != "*" and not _ALLOWED_HOST.fullmatch(extra):
            raise MovieGenreError(f"--allowed-host {extra!r}: not a host name or address (give no port or scheme)")
    if not 1 <= port <= 65535:
        raise MovieGenreError(f"--port must be 1-65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise MovieGenreError(f"--host {host!r}: not an address to listen on ({exc})") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise MovieGenreError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from exc


def serve(
    paths: ProjectPaths, host: str, port: int, max_upload_mb: float, extra_hosts: tuple[str, ...] = (),
    max_inflight_mb: float | None = None, max_connections: int = MAX_CONNECTIONS,
) -> None:  # fmt: skip
    """Check the options, load the artifacts (an error is one line before the port opens), then
    serve until stopped."""
    check_options(host, port, max_upload_mb, max_inflight_mb, max_connections, extra_hosts)
    import uvicorn

    from moviegenre.predict.predictor import Predictor

    began = time.perf_counter()
    predictor = Predictor(paths, ("poster", "plot"))
    log.info("loaded %s in %.1f s", ", ".join(predictor.branches), time.perf_counter() - began)
    app = create_app(predictor, paths, max_upload_mb, hosts=allowed_hosts(host, extra_hosts),
                     max_inflight_mb=max_inflight_mb)  # fmt: skip
    uvicorn.Server(server_config(app, host, port, max_connections)).run()


def server_config(app: FastAPI, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> Any:
    """uvicorn's settings for ``app``: the header deadline's protocol (which also caps connections
    at ``limit_concurrency``), keep-alive, shutdown deadline."""
    import uvicorn

    from moviegenre.cli.http_protocol import HeaderDeadlineProtocol

    return uvicorn.Config(app, host=host, port=port, http=HeaderDeadlineProtocol, log_level="info", access_log=False,
                          timeout_graceful_shutdown=SHUTDOWN_S, timeout_keep_alive=KEEP_ALIVE_S,
                          limit_concurrency=max_connections)  # fmt: skip


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moviegenre</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
textarea { width: 100%; height: 9rem; } label { display: block; margin: .8rem 0 .3rem; font-weight: 600; }
button { margin-top: 1rem; padding: .4rem 1.2rem; } #error { color: #b00020; }
table { border-collapse: collapse; margin-top: 1rem; } td, th { padding: .15rem .6rem; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr.in-set td:first-child { font-weight: 700; }
.bar { display: inline-block; height: .7rem; background: #4a7bd0; }
</style></head>
<body>
<h1>moviegenre</h1>
<p>Upload a poster, paste a plot, or both: the branches that can see them score the movie.</p>
<form id="movie">
  <label for="poster">Poster</label><input id="poster" name="poster" type="file" accept="image/*">
  <label for="plot">Plot</label><textarea id="plot" name="plot"></textarea>
  <label><input id="branches" type="checkbox"> each branch's probabilities</label>
  <button type="submit">Predict</button>
</form>
<p id="error"></p>
<div id="result" hidden><p id="scored"></p><p><b>Genres:</b> <span id="genres"></span></p>
<table id="table"></table></div>
<script>
const form = document.getElementById("movie");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = new FormData();
  const poster = document.getElementById("poster").files[0];
  const plot = document.getElementById("plot").value;
  if (poster) body.append("poster", poster);
  if (plot) body.append("plot", plot);
  const branches = document.getElementById("branches").checked;
  document.getElementById("error").textContent = "";
  const response = await fetch("predict?branches=" + branches, { method: "POST", body });
  const data = await response.json();
  if (!response.ok) {
    document.getElementById("result").hidden = true;
    document.getElementById("error").textContent = data.error;
    return;
  }
  document.getElementById("scored").textContent = data.seen + ": scored by " + data.branches.join(", ");
  document.getElementById("genres").textContent = data.genres.join(", ") || "(none above its threshold)";
  const table = document.getElementById("table");
  const names = branches ? Object.keys(data.by_branch) : [];
  const head = "<tr><th>genre</th><th>ensemble</th><th></th>" + names.map((b) => "<th>" + b + "</th>").join("");
  const rows = Object.entries(data.probabilities).map(([genre, p]) =>
    "<tr class='" + (data.genres.includes(genre) ? "in-set" : "") + "'><td>" + genre + "</td><td>" +
    p.toFixed(3) + "</td><td><span class='bar' style='width:" + (p * 8).toFixed(2) + "rem'></span></td>" +
    names.map((b) => "<td>" + data.by_branch[b][genre].toFixed(3) + "</td>").join("") + "</tr>");
  table.innerHTML = head + "</tr>" + rows.join("");
  document.getElementById("result").hidden = false;
});
</script>
</body></html>
"""
