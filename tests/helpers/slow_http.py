"""Loopback handlers that send a byte at a time: for deadlines and cancellation."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler


def trickle(h: BaseHTTPRequestHandler, byte: bytes = b"x", every_s: float = 0.2) -> None:
    """Announce a 1 MB body, then send one byte every ``every_s`` until the client goes away."""
    h.send_response(200)
    h.send_header("Content-Length", str(1 << 20))
    h.end_headers()
    try:
        for _ in range(1 << 20):
            h.wfile.write(byte)
            h.wfile.flush()
            time.sleep(every_s)
    except OSError:
        pass


def drip_headers(h: BaseHTTPRequestHandler, every_s: float = 0.2) -> None:
    """Start the status line and a header, then add one byte to that header every ``every_s``:
    the headers never end, and no read waits long enough to time out."""
    try:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        h.wfile.flush()
        while True:
            time.sleep(every_s)
            h.wfile.write(b"x")
            h.wfile.flush()
    except OSError:
        pass
