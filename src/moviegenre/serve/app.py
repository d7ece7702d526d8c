"""The FastAPI application over a loaded ``Predictor``: its routes, error answers and lifespan.

Every 4xx and 5xx answer is ``{"error": "..."}``: no poster and no plot, a plot with nothing
visible in it or that is not Unicode text, a poster that is not an image, a body over
``--max-upload-mb`` (413, for a form's parts and a JSON body alike), JSON nested deeper than
``MAX_JSON_DEPTH``, a second poster or plot, an unknown route (404) or method (405), a Host
header the server does not answer to (400, ``middleware.HostCheck``), a full queue or a full
in-flight budget (503 with ``Retry-After``). A 500 says only that something failed: what
failed goes to the log, never to the client.

Posters are checked (decoded) on ``CHECK_THREADS`` threads off the event loop, so a huge image
cannot stall ``/health``; predictions go through ``batching.Batcher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from moviegenre.core.errors import MovieGenreError
from moviegenre.core.paths import ProjectPaths
from moviegenre.data.posters import poster_problem
from moviegenre.predict.answer import movie_json, seen_text
from moviegenre.serve import health, models
from moviegenre.serve.batching import Batcher, Scored, scorer
from moviegenre.serve.limits import (
    BODY_TIMEOUT_S,
    CHECK_THREADS,
    DEFAULT_MAX_UPLOAD_MB,
    MAX_QUEUE,
    RETRY_AFTER_S,
    inflight_mb,
)
from moviegenre.serve.middleware import LOCAL_HOSTS, BodyLimit, HostCheck, InflightBytes
from moviegenre.serve.page import page_html
from moviegenre.serve.reading import read_movie

log = logging.getLogger(__name__)

INTERNAL_ERROR = "the server failed to answer this request; its log says why"
WARM_UP_PLOT = "A young woman moves to a haunted house where her family is killed one by one."


def warm_up_poster(directory: Path) -> Path:
    from PIL import Image

    path = directory / "warm-up.jpeg"
    Image.new("RGB", (64, 96), (120, 30, 40)).save(path, format="JPEG")
    return path


def result(
    genres: list[str], scored: Scored, poster: bool, plot: bool, with_branches: bool, top: int = 0
) -> dict[str, Any]:
    """What `moviegenre predict --json` prints for one movie."""
    return movie_json(
        genres, seen=seen_text(poster, plot), branches=scored.branches, in_set=scored.in_set,
        ensemble=scored.ensemble, by_branch=scored.by_branch if with_branches else None, top=top,
    )  # fmt: skip


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
    loaded = health.loaded(predictor, paths, max_upload_mb)

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

    # the answers are plain dicts, documented by the models in ``responses`` (a response_model would
    # validate every answer against them)
    @app.get("/health", responses=models.HEALTH)
    async def health_check() -> Any:
        return loaded | {"uptime_s": round(time.time() - started, 1), "predictions": batcher.done}

    @app.get("/", response_class=HTMLResponse, responses=models.PAGE)
    async def page() -> str:
        return page_html()

    @app.post("/predict", openapi_extra={"requestBody": models.predict_request_body()}, responses=models.PREDICT)
    async def predict(request: Request, branches: bool = False, top: int = 0) -> Any:
        if top < 0:
            raise HTTPException(400, f"top must be 0 (all genres) or a positive number, not {top}")
        try:
            plot, upload = await read_movie(request, max_bytes)
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
