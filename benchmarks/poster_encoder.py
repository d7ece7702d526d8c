"""Benchmark the poster encoder: the embed_posters stage's rate, and its branches' AUC beside image_dl's.

Runs ``stages/embed_posters.py`` (model build and weights included) ``--repeat`` times in a
throw-away copy of the project that links the workspace's ``data/raw`` and ``data/prepared``,
once per precision asked for, alternating so a busy CPU slows each alike, and prints the
median wall time and posters per second. Then the test and val macro ROC-AUC of the poster
branches and the encoder fusion from the workspace's metrics (run ``dvc repro`` first).

    python benchmarks/poster_encoder.py                              # 3 repeats, params.yaml's precision
    python benchmarks/poster_encoder.py --precisions float32,mixed_bfloat16 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from process_cost import measure  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("params.yaml", "stages", "src")
BRANCHES = ("image_ml", "image_dl", "image_encoder", "encoder_fusion", "ensemble")


def _copy(dest: Path, precision: str | None) -> Path:
    dest.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, dest / name)
    (dest / "data").mkdir()
    for linked in ("raw", "prepared"):
        (dest / "data" / linked).symlink_to(ROOT / "data" / linked)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    if precision:
        params["embed_posters"]["precision"] = precision
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--precisions", default="", help="comma-separated (default: params.yaml's)")
    args = parser.parse_args()
    if not (ROOT / "data" / "prepared" / "movies.parquet").is_file():
        raise SystemExit("data/prepared: not found; run `dvc repro prepare` first")
    precisions = [p for p in args.precisions.split(",") if p] or [None]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    runs: dict[str | None, list[dict]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory() as scratch:
        copies = {p: _copy(Path(scratch) / (p or "default"), p) for p in precisions}
        for _ in range(args.repeat):
            for precision, copy in copies.items():
                runs[precision].append(measure([sys.executable, "stages/embed_posters.py"], copy, env))
        posters = len(json.loads(_first_index_rows(copies)))
    print("| precision | median wall s | posters/s | peak RSS MiB | runs |")
    print("|---|---|---|---|---|")
    for precision, measured in runs.items():
        wall = statistics.median(m["wall_s"] for m in measured)
        rss = statistics.median(m["peak_rss_mib"] for m in measured)
        print(f"| {precision or 'params.yaml'} | {wall:.1f} | {posters / wall:.1f} | {rss:.0f} | {len(measured)} |")
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
