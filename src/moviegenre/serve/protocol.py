"""The server's HTTP/1.1 connections: uvicorn's h11 protocol with a deadline on each request's
headers, a cap on open connections, and its own error answers in the documented JSON.

Written for uvicorn 0.54.0, the version requirements.lock pins: it overrides methods of
uvicorn's ``H11Protocol``, which is not a documented interface. tests/unit/test_server_limits.py
fails when an upgrade changes what it relies on (the ``send_400_response`` hook, the
``limit_concurrency`` check); check this module against the new version's h11_impl.py then.

uvicorn's documented settings do what they can (``config.server_config``: keep-alive,
shutdown deadline, header size, connection cap), but none of them bounds the time a request's
headers take: uvicorn closes a keep-alive connection that stays idle, not one that has sent part
of a request line or of its headers. Such a client (slowloris) holds its connection, and a file
descriptor, for as long as it likes. Here a request's headers must be complete within
``HEADER_TIMEOUT_S`` of the connection opening or of the previous response; otherwise the client
gets 408 and the connection closes. The same deadline closes a connection whose client goes on
sending a body the server has already answered (a 413, say). The body's own deadline is the
application's (``middleware.BodyLimit``), which answers in the documented JSON.

Two answers come from uvicorn itself, before the application sees the request, and uvicorn
writes them as plain text: 400 to a request h11 cannot parse (``send_400_response``) and 503
past ``limit_concurrency``. This protocol writes the first in JSON, and answers the second
itself: it takes uvicorn's ``limit_concurrency`` setting as its cap on connections (and request
tasks), turns uvicorn's own check off, and refuses a request over the cap with JSON and
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from moviegenre.serve.limits import HEADER_TIMEOUT_S, RETRY_AFTER_S

log = logging.getLogger(__name__)


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode()  # as the application writes it


def error_response(status: int, reason: str, message: str) -> bytes:
    """A whole JSON error answer that closes the connection, written straight to the socket:
    no request exists to answer through."""
    body = error_body(message)
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, with a timer running while a request's headers are awaited, a cap on
    connections answered in JSON, and uvicorn's 400 in JSON."""

    header_timeout_s = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's own check answers in plain text: this protocol applies the same setting itself
        self.max_connections, self.limit_concurrency = self.limit_concurrency, None
        if self.max_connections is not None:
            self.app = self._capped(self.app)

    def _capped(self, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """``app``, except that a request arriving while more than ``max_connections`` connections
        are open (this one included), or as many requests are being answered, gets 503."""

        async def capped(scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
            if self.max_connections is None or max(len(self.connections), len(self.tasks)) <= self.max_connections:
                await app(scope, receive, send)
                return
            log.warning("%d connections open, over the cap of %d: answered 503", len(self.connections),
                        self.max_connections)  # fmt: skip
            body = error_body(f"the server has {self.max_connections} connections open already; try again shortly")
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")]  # fmt: skip
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return capped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """What uvicorn answers to a request h11 cannot parse (a malformed request line or header,
        headers over ``MAX_HEADER_BYTES``): the same 400, in JSON; uvicorn's text goes to the log.
        uvicorn 0.54.0's ``handle_events`` calls it on ``h11.RemoteProtocolError``."""
        log.info("%s: %s", self._peer(), msg)
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # no answer begun yet on this connection
            message = "not a valid HTTP/1.1 request (malformed request line or headers)"
            self.transport.write(error_response(400, "Bad Request", message))
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _awaiting_headers(self) -> bool:
        their, ours = self.conn.their_state, self.conn.our_state
        return their is h11.IDLE or (their is h11.SEND_BODY and ours in (h11.DONE, h11.MUST_CLOSE))

    def _follow(self) -> None:
        """Arm the timer while headers are awaited (or an answered body still arrives), else cancel it."""
        if self._awaiting_headers():
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)
        else:
            self._cancel()

    def _cancel(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if self.conn.our_state is h11.IDLE:
            log.info("%s sent no complete request headers within %g s; closed", self._peer(), self.header_timeout_s)
            message = f"request headers not complete within {self.header_timeout_s:g} s"
            self.transport.write(error_response(408, "Request Timeout", message))
        self.transport.close()
