"""Load-test `moviegenre serve` on 127.0.0.1: requests/s and latency percentiles.

Starts the server as a subprocess on a free port in ``--root`` (the project whose artifacts
it serves), waits for /health, sends a few warm-up requests, then ``--n`` requests from
``--concurrency`` clients (httpx, one connection each), bounded: every client sends its
next request when its last one answered. Plots are the prepared table's, in a fixed order;
``--posters`` also uploads each movie's poster (poster + plot requests). Prints requests/s,
p50/p95/max latency and the server's peak RSS, then stops the server.

    python benchmarks/serve.py                                  # 200 plot-only requests, 4 clients
    python benchmarks/serve.py --root /tmp/copy --n 400 --concurrency 8
    python benchmarks/serve.py --posters                        # poster + plot
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, port: int, log_file: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "moviegenre.cli", "serve", "--port", str(port)]
    with log_file.open("wb") as log:
        return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(url: str, server: subprocess.Popen, log_file: Path, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited ({server.returncode}):\n{log_file.read_text()[-3000:]}")
        try:
            response = httpx.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not healthy after {timeout_s:.0f} s")


def movies(root: Path, n: int, with_posters: bool) -> list[tuple[str, Path | None]]:
    import pandas as pd

    table = pd.read_parquet(root / "data" / "prepared" / "movies.parquet")
    if with_posters:
        table = table[table["poster"].notna()]
    rows = table.iloc[: max(n, 1)]
    out = []
    for _, movie in rows.iterrows():
        poster = Path(movie["poster"]) if with_posters else None
        out.append((movie["plot"], (poster if poster.is_absolute() else root / poster) if poster else None))
    return [out[i % len(out)] for i in range(n)]


async def load(url: str, work: list[tuple[str, Path | None]], concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) of every request and the wall time of them all; any non-200 stops the run."""
    queue: asyncio.Queue[tuple[str, Path | None]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            while not queue.empty():
                plot, poster = queue.get_nowait()
                files = {"poster": (poster.name, poster.read_bytes(), "image/jpeg")} if poster else None
                began = time.perf_counter()
                response = await http.post("/predict", data={"plot": plot}, files=files)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"HTTP {response.status_code}: {response.text[:300]}")

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def serving(root: Path) -> Iterator[tuple[str, int, subprocess.Popen]]:
    """A server on a free loopback port, healthy: its URL, port and process. On leaving, SIGTERM and
    the seconds it took to exit (what a shutdown under load costs)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "server.log"
        server = start_server(root, port, log_file)
        try:
            wait_healthy(url, server, log_file)
            yield url, port, server
        finally:
            server.send_signal(signal.SIGTERM)
            began = time.perf_counter()
            server.wait(timeout=60)
            print(f"SIGTERM to exit: {time.perf_counter() - began:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="project whose artifacts the server loads")
    parser.add_argument("--n", type=int, default=200, help="requests to time")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending at once")
    parser.add_argument("--posters", action="store_true", help="upload each movie's poster too")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    root = args.root.resolve()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        log_file = Path(tmp) / "server.log"
        began = time.perf_counter()
        server = start_server(root, port, log_file)
        try:
            health = wait_healthy(url, server, log_file)
            startup_s = time.perf_counter() - began
            work = movies(root, args.n + 2 * args.concurrency, args.posters)
            asyncio.run(load(url, work[: 2 * args.concurrency], args.concurrency))  # warm-up, not timed
            latencies, wall = asyncio.run(load(url, work[2 * args.concurrency :], args.concurrency))
            rss = peak_rss_mib(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    ordered = sorted(latencies)
    figures = {
        "requests": len(latencies),
        "concurrency": args.concurrency,
        "kind": "poster + plot" if args.posters else "plot only",
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max_ms": 1000 * ordered[-1],
        "startup_s": startup_s,
        "server_peak_rss_mib": rss,
        "branches": health["branches"],
    }
    print(f"\nroot: {root}   cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.2f}")
    print("| requests | kind | clients | requests/s | p50 ms | p95 ms | max ms | startup s | server peak RSS MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {figures['requests']} | {figures['kind']} | {args.concurrency} | {figures['requests_per_s']:.1f} | "
        f"{figures['p50_ms']:.0f} | {figures['p95_ms']:.0f} | {figures['max_ms']:.0f} | {startup_s:.1f} | "
        f"{rss or float('nan'):.0f} |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
