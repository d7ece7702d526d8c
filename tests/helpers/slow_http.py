"""A loopback handler that sends its body a byte at a time: for deadlines and cancellation."""

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
