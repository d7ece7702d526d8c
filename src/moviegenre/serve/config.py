"""The server's options, checked before the models load, and uvicorn's settings.

A bad option, or a port another process holds, is one line before seconds of model loading,
not a traceback after it: the port is probed by binding it as uvicorn will.

uvicorn's documented settings carry every bound they can: ``timeout_keep_alive`` (an idle
connection between requests), ``timeout_graceful_shutdown`` (how long open connections get on
SIGTERM), ``h11_max_incomplete_event_size`` (the request line and headers: 400 past it) and
``limit_concurrency`` (open connections). ``protocol.HeaderDeadlineProtocol`` adds what no
setting does, a deadline on a request's headers, and answers uvicorn's plain-text refusals in
JSON; it applies ``limit_concurrency`` itself for that reason.
"""

from __future__ import annotations

import math
import resource
import socket
from typing import Any

from moviegenre.core.errors import MovieGenreError
from moviegenre.serve.limits import (
    FILES_RESERVED,
    KEEP_ALIVE_S,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_INFLIGHT_MB_BOUND,
    SHUTDOWN_S,
    UPLOAD_MB_RANGE,
)
from moviegenre.serve.middleware import ALLOWED_HOST


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
        if extra != "*" and not ALLOWED_HOST.fullmatch(extra):
            raise MovieGenreError(f"--allowed-host {extra!r}: not a host name or address (give no port or scheme)")
    if not 1 <= port <= 65535:
        raise MovieGenreError(f"--port must be 1-65535, not {port}")
    probe_port(host, port)


def probe_port(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will, and let it go: a port held elsewhere is one line now."""
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


def server_config(app: Any, host: str, port: int, max_connections: int = MAX_CONNECTIONS) -> Any:
    """uvicorn's settings for ``app``: the header deadline's protocol (which also caps connections
    at ``limit_concurrency``), keep-alive, shutdown deadline, header size."""
    import uvicorn

    from moviegenre.serve.protocol import HeaderDeadlineProtocol

    return uvicorn.Config(
        app, host=host, port=port, http=HeaderDeadlineProtocol, log_level="info", access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=SHUTDOWN_S, limit_concurrency=max_connections,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )  # fmt: skip
