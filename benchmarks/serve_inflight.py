"""Bodies in flight on `moviegenre serve`: what clients that hold near-limit uploads cost its memory.

Starts the server (as benchmarks/serve.py does) on ``--root``'s artifacts with its default
options, then opens ``--connections`` connections at once, each declaring a JSON body of
``--declared-mb`` MB (the default: exactly the default --max-upload-mb) and sending all of it
but the last ``--held-bytes`` bytes, then holding. While they hold, it prints the server's RSS,
how each connection was answered so far (status, or "held": no answer yet) and how long
``GET /health`` takes; then it closes them and stops the server. Bounded: every send and
read has a deadline (``--deadline-s``), and the hold lasts ``--hold-s``.

    python benchmarks/serve_inflight.py                      # 100 connections x 10 MB declared
    python benchmarks/serve_inflight.py --root /tmp/project --connections 40
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from pathlib import Path

import httpx
from serve import ROOT, serving  # benchmarks/, the script's own folder
from serve_abuse import peak_rss_mib


def rss_mib(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def hold_body(
    port: int, declared: int, body: memoryview, deadline_s: float
) -> tuple[str, asyncio.StreamWriter | None]:
    """Send a request's headers and ``body`` (short of ``declared``); return what the server
    answered by then ("held": nothing yet) and the open connection (None once it is closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    try:
        writer.write(head)
        for start in range(0, len(body), 1 << 20):
            writer.write(body[start : start + (1 << 20)])
            await asyncio.wait_for(writer.drain(), deadline_s)
    except (ConnectionError, TimeoutError) as exc:  # refused and closed while sending, or stalled
        return type(exc).__name__, None
    try:
        status_line = await asyncio.wait_for(reader.readline(), 0.5)
    except TimeoutError:
        return "held", writer
    return (status_line.split(b" ")[1].decode() if status_line else "closed"), writer


async def scenario(url: str, port: int, pid: int, args: argparse.Namespace) -> None:
    declared = int(args.declared_mb * 1e6)
    body = memoryview(b'{"plot": "' + b"x" * (declared - args.held_bytes - 10))  # one copy for every connection
    idle = rss_mib(pid)
    began = time.perf_counter()
    outcomes = await asyncio.gather(
        *(hold_body(port, declared, body, args.deadline_s) for _ in range(args.connections))
    )
    sent_in = time.perf_counter() - began
    samples = []
    async with httpx.AsyncClient(timeout=args.deadline_s) as client:
        probe_began = time.perf_counter()
        health = (await client.get(f"{url}/health")).status_code
        probe_s = time.perf_counter() - probe_began
        hold_until = time.perf_counter() + args.hold_s
        while time.perf_counter() < hold_until:
            samples.append(rss_mib(pid))
            await asyncio.sleep(0.25)
    counts = collections.Counter(status for status, _ in outcomes)
    print(f"{args.connections} connections x {declared:,} bytes declared, {declared - args.held_bytes:,} sent "
          f"(in {sent_in:.1f} s): {dict(sorted(counts.items()))}")  # fmt: skip
    print(f"  server RSS: {idle:.0f} MiB idle, {max(samples):.0f} MiB at most while they hold "
          f"({args.hold_s:g} s), peak {peak_rss_mib(pid):.0f} MiB (VmHWM)")  # fmt: skip
    print(f"  GET /health while they hold: {health} in {probe_s:.3f} s")
    for _, writer in outcomes:
        if writer is not None:
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--declared-mb", type=float, default=10.0, help="each body's Content-Length, in MB")
    parser.add_argument("--held-bytes", type=int, default=1000, help="bytes of each body never sent")
    parser.add_argument("--hold-s", type=float, default=3.0, help="how long RSS is sampled while they hold")
    parser.add_argument("--deadline-s", type=float, default=30.0, help="a stalled send or read gives up then")
    args = parser.parse_args()
    with serving(args.root) as (url, port, server):
        asyncio.run(scenario(url, port, server.pid, args))


if __name__ == "__main__":
    main()
