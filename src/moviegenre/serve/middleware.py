"""The ASGI middleware in front of the routes: request bodies bounded in size, time and
in-flight bytes, and the Host check.

The Host check is this module's own rather than Starlette's ``TrustedHostMiddleware``, which
would not give the same answers: it writes its 400 itself, as plain text ("Invalid host
header") that names no header and leaves no hook to answer the documented JSON; by default it
answers a host that is ``www.`` short of an allowed one with a redirect instead of 400; and it
takes a port of any number of digits. Here every refusal is ``{"error": ...}`` naming the header and
``--allowed-host``, and a Host header is a host and a port of at most five digits.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from moviegenre.serve.limits import BODY_TIMEOUT_S, RETRY_AFTER_S

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


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
ALLOWED_HOST = re.compile(rf"{_HOST_NAME}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")  # an IPv6 address without brackets too


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
