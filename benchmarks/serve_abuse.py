"""Hostile load on `moviegenre serve`: what huge images and huge plots cost the other clients.

Starts the server (as benchmarks/serve.py does) on ``--root``'s artifacts, then:

- **bombs**: ``--bombs`` clients at once each upload a PNG of ``--side`` x ``--side`` pixels
  (one colour, so a few hundred KB that decode to hundreds of MB), while a probe asks
  ``GET /health`` every 0.2 s; prints the probe's median and worst latency and the bombs' statuses;
- **plots**: ``--plots`` clients at once each send a JSON plot of ``--plot-mb`` MB; prints the
  statuses and the server's peak RSS (VmHWM) before and after.

    python benchmarks/serve_abuse.py                      # 10 bombs of 7745 px, 16 plots of 4.4 MB
    python benchmarks/serve_abuse.py --bombs 4 --side 6000 --plots 8
    python benchmarks/serve_abuse.py --bombs 0            # the plots alone, for the peak RSS they cause
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from pathlib import Path

import httpx
from PIL import Image
from serve import ROOT, serving  # benchmarks/, the script's own folder


def png_bomb(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 160)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def bombs(url: str, count: int, side: int) -> None:
    image = png_bomb(side)
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=600) as client:

        async def probe(stop: asyncio.Event) -> None:
            while not stop.is_set():
                began = time.perf_counter()
                await client.get(f"{url}/health")
                latencies.append(time.perf_counter() - began)
                await asyncio.sleep(0.2)

        async def upload() -> int:
            files = {"poster": ("bomb.png", image, "image/png")}
            return (await client.post(f"{url}/predict", files=files, data={"plot": "a plot"})).status_code

        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        began = time.perf_counter()
        statuses = await asyncio.gather(*(upload() for _ in range(count)))
        took = time.perf_counter() - began
        stop.set()
        await prober
    print(f"bombs: {count} x {side}x{side} PNG ({len(image) / 1e3:.0f} KB), statuses {sorted(set(statuses))}, "
          f"all answered in {took:.1f} s")  # fmt: skip
    print(f"  /health during them: median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s, "
          f"{len(latencies)} probes")  # fmt: skip


async def plots(url: str, count: int, megabytes: float, pid: int) -> None:
    plot = ("word " * int(megabytes * 1e6 / 5))[: int(megabytes * 1e6)]
    before = peak_rss_mib(pid)
    async with httpx.AsyncClient(timeout=600) as client:
        answers = await asyncio.gather(*(client.post(f"{url}/predict", json={"plot": plot}) for _ in range(count)))
    statuses = sorted({a.status_code for a in answers})
    print(
        f"plots: {count} x {megabytes:g} MB JSON, statuses {statuses}, first error {answers[0].json().get('error')!r}"
    )
    print(f"  server peak RSS: {before:.0f} MiB before, {peak_rss_mib(pid):.0f} MiB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--bombs", type=int, default=10)
    parser.add_argument("--side", type=int, default=7745, help="PNG side in pixels (7745: just under the limit)")
    parser.add_argument("--plots", type=int, default=16)
    parser.add_argument("--plot-mb", type=float, default=4.4)
    args = parser.parse_args()
    with serving(args.root) as (url, _, server):
        if args.bombs:
            asyncio.run(bombs(url, args.bombs, args.side))
        if args.plots:
            asyncio.run(plots(url, args.plots, args.plot_mb, server.pid))


if __name__ == "__main__":
    main()
