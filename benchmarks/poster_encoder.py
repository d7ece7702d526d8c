"""Benchmark the poster encoder: the embed_posters stage's rate, and its branches' AUC beside image_dl's.

Runs ``stages/embed_posters.py`` (model build and weights included) ``--repeat`` times in a
throw-away copy of the project that links the workspace's ``data/raw`` and ``data/prepared``,
once per precision asked for, alternating so a busy CPU slows each alike, and prints the
median wall time and posters per second. Then the test and val macro ROC-AUC of the poster
branches and the encoder fusion from the workspace's metrics (run ``dvc repro`` first).

    python benchmarks/poster_encoder.py                              # 3 repeats, params.yaml's settings
    python benchmarks/poster_encoder.py --precisions float32,mixed_bfloat16 --repeat 5
    python benchmarks/poster_encoder.py --batch-sizes 8,32           # one variant per batch size
    python benchmarks/poster_encoder.py --baseline-src /tmp/old/src  # and another version of the code

A variant is a precision and a batch size (each default: params.yaml's); ``--baseline-src``
(a ``src`` directory holding another version of the ``moviegenre`` package) adds each batch
size run by that code, so before and after alternate too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from process_cost import measure  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("params.yaml", "stages", "src")
BRANCHES = ("image_ml", "image_dl", "image_encoder", "encoder_fusion", "ensemble")


@dataclass(frozen=True)
class Variant:
    """One way of running the stage: params.yaml's settings, some replaced, by this code or another's."""

    precision: str | None = None
    batch_size: int | None = None
    src: Path | None = None

    @property
    def label(self) -> str:
        parts = [f"precision {self.precision}"] * bool(self.precision)
        parts += [f"batch {self.batch_size}"] * bool(self.batch_size)
        parts += [f"code {self.src}"] * bool(self.src)
        return ", ".join(parts) or "params.yaml"


def _copy(dest: Path, variant: Variant) -> Path:
    dest.mkdir(parents=True)
    for name in COPIED:
        source = variant.src if name == "src" and variant.src else ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, dest / name)
    (dest / "data").mkdir()
    for linked in ("raw", "prepared"):
        (dest / "data" / linked).symlink_to(ROOT / "data" / linked)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    if variant.precision:
        params["embed_posters"]["precision"] = variant.precision
    if variant.batch_size:
        params["embed_posters"]["batch_size"] = variant.batch_size
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--precisions", default="", help="comma-separated (default: params.yaml's)")
    parser.add_argument("--batch-sizes", default="", help="comma-separated (default: params.yaml's)")
    parser.add_argument("--baseline-src", type=Path, help="a src directory of another version, run beside")
    args = parser.parse_args()
    if not (ROOT / "data" / "prepared" / "movies.parquet").is_file():
        raise SystemExit("data/prepared: not found; run `dvc repro prepare` first")
    precisions = [p for p in args.precisions.split(",") if p] or [None]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b] or [None]
    variants = [Variant(p, b) for p in precisions for b in batch_sizes]
    if args.baseline_src:
        if not (args.baseline_src / "moviegenre" / "__init__.py").is_file():
            raise SystemExit(f"{args.baseline_src}: not a src directory holding the moviegenre package")
        variants += [Variant(precisions[0], b, args.baseline_src.resolve()) for b in batch_sizes]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs: dict[Variant, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as scratch:
        copies = {v: _copy(Path(scratch) / f"variant{i}", v) for i, v in enumerate(variants)}
        for _ in range(args.repeat):
            for variant, copy in copies.items():
                code = {"PYTHONPATH": str(copy / "src")}  # the copy's package, not the installed one
                runs[variant].append(measure([sys.executable, "stages/embed_posters.py"], copy, env | code))
        posters = len(json.loads(_first_index_rows(copies)))
    print("| variant | median wall s | posters/s | peak RSS MiB | runs |")
    print("|---|---|---|---|---|")
    for variant, measured in runs.items():
        wall = statistics.median(m["wall_s"] for m in measured)
        rss = statistics.median(m["peak_rss_mib"] for m in measured)
        print(f"| {variant.label} | {wall:.1f} | {posters / wall:.1f} | {rss:.0f} | {len(measured)} |")
    print()
    print("| branch | test macro ROC-AUC | val |")
    print("|---|---|---|")
    for name in BRANCHES:
        path = ROOT / "metrics" / f"{name}.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            print(f"| {name} | {metrics['test']['roc_auc_macro']:.4f} | {metrics['val']['roc_auc_macro']:.4f} |")


def _first_index_rows(copies: dict) -> str:
    """The posters embedded, as a JSON list of ids (from the first copy's index.csv)."""
    index = next(iter(copies.values())) / "data" / "features" / "poster_embeddings" / "index.csv"
    return json.dumps(index.read_text().splitlines()[1:])


if __name__ == "__main__":
    main()
