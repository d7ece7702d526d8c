"""Benchmark plot encoding: the straightforward loop against ``SentenceEncoder.encode``, side by side.

Samples ``--n`` plots (fixed seed) from the shared MM-IMDb archive, read straight out of the
tar (nothing is extracted), and times both methods in alternation within each repeat, so a
busy CPU slows both alike. The straightforward loop pads every plot to 256 tokens, runs
batches of 64 and calls the backbone eagerly; both methods share one loaded backbone and
tokenizer. One untimed warm-up call of each (tracing, oneDNN primitive creation) comes first.

    python benchmarks/encoder.py                         # 512 plots, 3 repeats, Markdown on stdout
    python benchmarks/encoder.py --n 128 --repeat 1      # quick look
    python benchmarks/encoder.py --lengths 64,128,256    # plots/s of encode at each sequence_length
    python benchmarks/encoder.py --precisions float32    # leave out the bfloat16 row
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tarfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from moviegenre.features.sentence_encoder import PRECISIONS, SentenceEncoder  # noqa: E402

log = logging.getLogger("benchmark")

SHARED = ROOT.parent / "shared"
DEFAULT_ARCHIVE = SHARED / "datasets" / "mmimdb-subset.tar.gz"
DEFAULT_PRESET = SHARED / "models" / "all-MiniLM-L6-v2"
MEMBER_PREFIX = "mmimdb/dataset/"


def read_plots(archive: Path) -> dict[str, str]:
    """The longest plot of every movie, by member name, read from the tar without extracting it."""
    plots: dict[str, str] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not (member.isfile() and member.name.startswith(MEMBER_PREFIX) and member.name.endswith(".json")):
                continue
            handle = tar.extractfile(member)
            record = json.load(handle) if handle else {}
            pieces = [p for p in record.get("plot") or [] if isinstance(p, str) and p.strip()]
            if pieces:
                plots[member.name] = max(pieces, key=len)
    return plots


def sample_plots(archive: Path, n: int, seed: int) -> list[str]:
    plots = read_plots(archive)
    names = sorted(plots)
    chosen = np.random.default_rng(seed).choice(len(names), size=min(n, len(names)), replace=False)
    return [plots[names[i]] for i in chosen]


def straightforward(encoder: SentenceEncoder, texts: list[str], batch_size: int = 64, length: int = 256) -> np.ndarray:
    """The loop this work replaces: eager tokenizer and backbone, every plot padded to ``length``."""
    tokenizer, backbone = encoder.tokenizer, encoder.backbone
    out = []
    for start in range(0, len(texts), batch_size):
        rows = tokenizer(texts[start : start + batch_size])
        ids = np.zeros((len(rows), length), dtype=np.int32)
        for i, row in enumerate(rows):
            packed = [tokenizer.cls_token_id, *list(row)[: length - 2], tokenizer.sep_token_id]
            ids[i, : len(packed)] = packed
        mask = (ids != tokenizer.pad_token_id).astype(np.int32)
        inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
        hidden = np.asarray(backbone(inputs, training=False)["sequence_output"], dtype=np.float32)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(out).astype(np.float32)


def timed(method: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = method(texts)
    return len(texts) / (time.perf_counter() - start), vectors


def compare(reference: np.ndarray, vectors: np.ndarray) -> tuple[float, float]:
    """Max absolute difference and smallest row cosine between two sets of unit vectors."""
    return float(np.abs(reference - vectors).max()), float((reference * vectors).sum(axis=1).min())


def side_by_side(args: argparse.Namespace, texts: list[str]) -> None:
    """Alternate the straightforward loop and encode (each precision) within every repeat."""
    encoders = {
        p: SentenceEncoder.load(str(args.preset), None, args.sequence_length, precision=p) for p in args.precisions
    }
    methods: dict[str, Callable[[list[str]], np.ndarray]] = {
        "straightforward (pad 256, batch 64, eager)": lambda t: straightforward(encoders["float32"], t)
    }
    for precision, encoder in encoders.items():
        methods[f"SentenceEncoder.encode ({precision}, batch {args.batch_size})"] = lambda t, e=encoder: e.encode(
            t, args.batch_size, progress=False
        )
    for method in methods.values():
        method(texts[:16])  # warm-up: tracing and kernel set-up are not throughput
    rates: dict[str, list[float]] = {name: [] for name in methods}
    vectors: dict[str, np.ndarray] = {}
    for repeat in range(args.repeat):
        for name, method in methods.items():
            rate, result = timed(method, texts)
            if name in vectors and result.tobytes() != vectors[name].tobytes():
                log.warning("%s: not byte-identical between repeats", name)
            rates[name].append(rate)
            vectors[name] = result
            log.info("repeat %d: %s %.2f plots/s", repeat + 1, name, rate)
    base_name = next(iter(methods))
    base = statistics.median(rates[base_name])
    print(f"\n{len(texts)} plots, sequence_length {args.sequence_length}, {args.repeat} repeats, {cpu_note()}\n")
    print("| method | plots/s (runs) | median plots/s | speed-up | max abs diff | min cosine |")
    print("|---|---|---|---|---|---|")
    for name, runs in rates.items():
        median = statistics.median(runs)
        diff, cosine = compare(vectors[base_name], vectors[name])
        runs_text = ", ".join(f"{r:.1f}" for r in runs)
        print(f"| {name} | {runs_text} | {median:.2f} | {median / base:.2f}x | {diff:.2e} | {cosine:.7f} |")


def per_length(args: argparse.Namespace, texts: list[str]) -> None:
    """plots/s of encode at each sequence_length (what shorter inputs buy; AUC is measured elsewhere)."""
    print(
        "\n| sequence_length | precision | plots/s (runs) | median plots/s | mean tokens/plot |\n|---|---|---|---|---|"
    )
    for precision in args.precisions:
        for length in args.lengths:
            encoder = SentenceEncoder.load(str(args.preset), None, length, precision=precision)
            encoder.encode(texts[:16], args.batch_size, progress=False)
            encode = partial(encoder.encode, batch_size=args.batch_size, progress=False)
            runs = [timed(encode, texts)[0] for _ in range(args.repeat)]
            tokens = np.mean([len(r) for r in encoder.token_ids(texts)])
            runs_text = ", ".join(f"{r:.1f}" for r in runs)
            print(f"| {length} | {precision} | {runs_text} | {statistics.median(runs):.2f} | {tokens:.0f} |")


def cpu_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.2f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="plots sampled from the archive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of SentenceEncoder.encode")
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16", help=f"of {', '.join(PRECISIONS)}")
    parser.add_argument("--lengths", default="", help="e.g. 64,128,256: also time encode at each sequence_length")
    parser.add_argument("--skip-baseline", action="store_true", help="with --lengths: only the per-length table")
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--preset", type=Path, default=DEFAULT_PRESET)
    args = parser.parse_args()
    args.precisions = [p for p in args.precisions.split(",") if p]
    if "float32" not in args.precisions:
        args.precisions.insert(0, "float32")  # the straightforward loop runs in float32
    args.lengths = [int(v) for v in args.lengths.split(",") if v]
    return args


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args()
    texts = sample_plots(args.archive, args.n, args.seed)
    log.info("%d plots sampled from %s (seed %d); %s", len(texts), args.archive, args.seed, cpu_note())
    if not args.skip_baseline:
        side_by_side(args, texts)
    if args.lengths:
        per_length(args, texts)


if __name__ == "__main__":
    main()
