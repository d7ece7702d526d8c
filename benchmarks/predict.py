"""Benchmark one-movie prediction against `python -c "import tensorflow"`, side by side.

The yardstick is the wall time of importing TensorFlow, which every prediction pays:
`moviegenre predict --poster P --plot-file F` is reported as a multiple of it. Both commands run as
fresh processes in alternating pairs (import, predict, import, predict, ...), so a busy CPU
slows both alike; the table gives medians, the ratio of the medians, the median of the
per-pair ratios, CPU seconds and each process's own peak RSS (from wait4).

The movie is the first test-split movie with a poster in ``--root``'s prepared table (or
``--poster``/``--plot-file``). ``--root`` is the project whose artifacts are used (models/,
data/, as `moviegenre predict` finds them in its working directory): point it at a copy
whose models were converted to a new format without touching the working tree's.

    python benchmarks/predict.py                       # 5 pairs in this project
    python benchmarks/predict.py --root /tmp/copy --repeat 7
    python benchmarks/predict.py --plot-only           # also time a plot-only prediction
    python benchmarks/predict.py --uncached            # also time it with the encoder cache off
    python benchmarks/predict.py --root /tmp/copy --baseline-src /tmp/old/src --baseline-root .
                                                       # and the code in /tmp/old/src on this project's models

Prediction reads the sentence encoder from a SavedModel export kept in a cache
(``MOVIEGENRE_CACHE``); the benchmark gives it an empty cache of its own, so the untimed
warm-up run is the cold first prediction that exports the encoder, and its time is printed
apart. ``--uncached`` also times the prediction with ``MOVIEGENRE_CACHE=off`` (the encoder
built from its preset by KerasHub every time), side by side.

A baseline (``--baseline-src``: a ``src`` directory holding another version of the
``moviegenre`` package, ``--baseline-root``: the project whose artifacts that version reads)
joins the alternation, so before and after are measured side by side too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from process_cost import measure  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]


def _env(src: Path = ROOT / "src", **extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(src), **extra}


def pick_movie(root: Path, scratch: Path) -> tuple[Path, Path]:
    """The first test movie with a poster: its poster path and a file holding its plot."""
    import pandas as pd

    table = pd.read_parquet(root / "data" / "prepared" / "movies.parquet")
    movie = table[(table["split"] == "test") & table["poster"].notna()].iloc[0]
    plot_file = scratch / f"{movie['id']}.txt"
    plot_file.write_text(movie["plot"], encoding="utf-8")
    poster = Path(movie["poster"])
    return (poster if poster.is_absolute() else root / poster), plot_file


def summarise(runs: list[dict[str, float]]) -> dict[str, float]:
    walls = [r["wall_s"] for r in runs]
    return {
        "wall_median_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_median_s": statistics.median(r["cpu_s"] for r in runs),
        "peak_rss_median_mib": statistics.median(r["peak_rss_mib"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="project whose artifacts predict uses")
    parser.add_argument("--repeat", type=int, default=5, help="alternating pairs to run")
    parser.add_argument("--poster", type=Path, help="poster to predict (default: a test movie's)")
    parser.add_argument("--plot-file", type=Path, help="plot to predict (default: the same movie's)")
    parser.add_argument("--plot-only", action="store_true", help="also time a plot-only prediction")
    parser.add_argument("--uncached", action="store_true", help="also time predict with MOVIEGENRE_CACHE=off")
    parser.add_argument("--baseline-src", type=Path, help="src directory of another moviegenre to time beside")
    parser.add_argument("--baseline-root", type=Path, help="project whose artifacts the baseline reads")
    parser.add_argument("--json", type=Path, help="write the raw runs and summaries here too")
    args = parser.parse_args()
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as tmp:
        poster, plot_file = pick_movie(root, Path(tmp)) if args.poster is None else (args.poster, args.plot_file)
        if plot_file is None:
            raise SystemExit("--poster needs --plot-file")
        both = [
            sys.executable, "-m", "moviegenre.cli", "predict", "--poster", str(poster.resolve()),
            "--plot-file", str(plot_file.resolve()),
        ]  # fmt: skip
        src, cache = ROOT / "src", {"MOVIEGENRE_CACHE": str(Path(tmp) / "cache")}  # empty: the warm-up exports
        commands = {
            "import tensorflow": ([sys.executable, "-c", "import tensorflow"], root, _env(src)),
            "predict poster+plot": (both, root, _env(src, **cache)),
        }
        if args.plot_only:
            plot_only = [sys.executable, "-m", "moviegenre.cli", "predict", "--plot-file", str(plot_file.resolve())]
            commands["predict plot only"] = (plot_only, root, _env(src, **cache))
        if args.uncached:
            commands["predict poster+plot, cache off"] = (both, root, _env(src, MOVIEGENRE_CACHE="off"))
        if args.baseline_src:
            baseline_root = (args.baseline_root or root).resolve()
            commands["baseline predict poster+plot"] = (both, baseline_root, _env(args.baseline_src.resolve()))
        warm_up = {name: measure(*spec) for name, spec in commands.items()}  # page cache, and the encoder export
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        for i in range(args.repeat):
            for name, spec in commands.items():
                runs[name].append(measure(*spec))
                print(f"pair {i + 1}/{args.repeat} {name}: {runs[name][-1]['wall_s']:.2f} s", file=sys.stderr)
    summary = {name: summarise(r) for name, r in runs.items()}
    base = summary["import tensorflow"]["wall_median_s"]
    print(f"\nroot: {root}   pairs: {args.repeat}   cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.2f}")
    first = warm_up["predict poster+plot"]
    print(f"first prediction, empty encoder cache (exports the encoder): {first['wall_s']:.2f} s wall, "
          f"{first['peak_rss_mib']:.0f} MiB (untimed warm-up; not in the table)")  # fmt: skip
    print("| command | wall median s | min-max s | CPU median s | peak RSS MiB | x import tensorflow |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(
            f"| {name} | {s['wall_median_s']:.2f} | {s['wall_min_s']:.2f}-{s['wall_max_s']:.2f} | "
            f"{s['cpu_median_s']:.2f} | {s['peak_rss_median_mib']:.0f} | {s['wall_median_s'] / base:.2f} |"
        )
    for name in commands:
        if name != "import tensorflow":
            pairs = [p["wall_s"] / t["wall_s"] for p, t in zip(runs[name], runs["import tensorflow"], strict=True)]
            print(f"{name}: median of per-pair ratios {statistics.median(pairs):.2f}")
    if args.json:
        args.json.write_text(json.dumps({"warm_up": warm_up, "runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
