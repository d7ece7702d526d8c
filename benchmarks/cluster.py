"""The cluster path against the in-process one, side by side on this machine: embed_text,
embed_posters and `moviegenre predict --dataset` on catalogues of N and 4N movies.

The catalogues are built from the shared dataset's movies as benchmarks/scale.py builds its
copies (copy 0: N movies sampled from the archive; copies 1-3: the same movies under new ids,
posters jittered, plots redrawn from sentences of the same genres). Each size gets a project
copy whose download and prepare stages run first (not measured); then each task runs once per
engine and repeat, in a fresh process, exactly as DVC or a user would start it:

- in-process: ``python stages/embed_text.py`` (and embed_posters), ``moviegenre predict --dataset``;
- cluster: the same with ``DASK_SCHEDULER_ADDRESS`` naming a ``LocalCluster`` of two worker
  processes, one thread each, started by this script and kept for every run (its workers have
  imported TensorFlow before the first one, as long-lived workers would have).

Each run's figures are the driver's own (``os.wait4``): wall time, and peak RSS of the stage's
or the command's process, which on a cluster holds no model, only the plan, the shards in
flight and the results. The workers' memory is not counted. The outputs of both engines are
compared byte for byte (embeddings.npy; the CSV), so the table also says they are the same.

predict --dataset scores with the models of this project's workspace (``make repro`` first).

    python benchmarks/cluster.py --movies 500              # N = 500, 4N = 2000
    python benchmarks/cluster.py --movies 500 --repeat 3 --json cluster.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from process_cost import measure  # benchmarks/, the script's own folder
from scale import DEFAULT_SOURCE, ROOT, build_dataset, copy_project, stage_environment

TASKS = ("embed_text", "embed_posters", "predict")
UNITS = {"embed_text": "plots", "embed_posters": "posters", "predict": "movies"}
WORKERS, THREADS = 2, 1


def environment(address: str | None) -> dict[str, str]:
    env = {key: value for key, value in stage_environment(ROOT).items() if key != "DASK_SCHEDULER_ADDRESS"}
    if address:
        env["DASK_SCHEDULER_ADDRESS"] = address
    return env


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def prepared_project(work: Path, dataset: Path) -> tuple[Path, dict[str, int]]:
    """A project copy on ``dataset`` with its download and prepare stages run; its rows per task."""
    import pandas as pd

    repo = copy_project(work / "project", {"data.source": str(dataset), "data.sha256": None, "data.limit": None})
    for stage in ("download", "prepare"):
        measure([sys.executable, f"stages/{stage}.py"], repo, environment(None))
    table = pd.read_parquet(repo / "data" / "prepared" / "movies.parquet")
    rows = {
        "embed_text": len(table),
        "embed_posters": int(table["poster"].notna().sum()),
        "predict": len(table),
    }
    return repo, rows


def run_task(task: str, repo: Path, dataset: Path, address: str | None, out: Path) -> dict:
    """One run of ``task``: the driver's figures and the digest of what it wrote."""
    if task == "predict":
        csv = out / f"predict-{'cluster' if address else 'local'}.csv"
        command = [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", str(dataset), "--out", str(csv)]
        figures = measure(command + (["--scheduler", address] if address else []), ROOT, environment(None))
        return figures | {"digest": digest(csv)}
    figures = measure([sys.executable, f"stages/{task}.py"], repo, environment(address))
    folder = "plot/embeddings" if task == "embed_text" else "poster/poster_embeddings"
    return figures | {"digest": digest(repo / "data" / "features" / folder / "embeddings.npy")}


def warm(client: object) -> None:
    """Every worker imports TensorFlow once, as a long-running worker has before a stage reaches it."""

    def load() -> str:
        import tensorflow as tf

        return tf.__version__

    client.run(load)  # type: ignore[attr-defined]


def summary(runs: list[dict]) -> dict:
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "digests": sorted({r["digest"] for r in runs}),
        "runs": len(runs),
    }


def table(results: dict, rows: dict, sizes: list[str], tasks: list[str]) -> str:
    lines = [
        "| task | movies | rows | in-process s | cluster s | cluster / in-process | same bytes "
        "| driver RSS MiB in-process / cluster | rows/s per worker in-process / cluster |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for task in tasks:
        for size in sizes:
            local, cluster = results[task][size]["local"], results[task][size]["cluster"]
            n = rows[size][task]
            same = "yes" if local["digests"] == cluster["digests"] and len(local["digests"]) == 1 else "NO"
            lines.append(
                f"| {task} | {rows[size]['predict']} | {n} {UNITS[task]} | {local['wall_s']:.1f} | "
                f"{cluster['wall_s']:.1f} | {cluster['wall_s'] / local['wall_s']:.2f} | {same} | "
                f"{local['peak_rss_mib']:.0f} / {cluster['peak_rss_mib']:.0f} | "
                f"{n / local['wall_s']:.1f} / {n / cluster['wall_s'] / WORKERS:.1f} |"
            )
    lines += ["", "| task | driver peak RSS 4N / N, in-process | cluster |", "|---|---:|---:|"]
    small, large = sizes
    for task in tasks:
        ratio = {
            engine: results[task][large][engine]["peak_rss_mib"] / results[task][small][engine]["peak_rss_mib"]
            for engine in ("local", "cluster")
        }
        lines.append(f"| {task} | {ratio['local']:.2f} | {ratio['cluster']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movies", type=int, default=500, help="N: movies sampled from --source (4N is built too)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="MM-IMDb archive or directory")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each task on each engine (medians)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", action="append", choices=TASKS, help="only this task (repeatable)")
    parser.add_argument("--keep", type=Path, help="keep the catalogues and project copies under this directory")
    parser.add_argument("--json", type=Path, help="write the raw figures here too")
    args = parser.parse_args()
    if not (ROOT / "models" / "ensemble" / "ensemble.json").is_file():
        raise SystemExit(f"{ROOT}/models: no trained pipeline; run `make repro` first (predict --dataset uses it)")
    tasks = args.task or list(TASKS)

    from distributed import Client, LocalCluster

    work = args.keep or Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    sizes = {"N": 1, "4N": 4}
    repos, datasets, rows = {}, {}, {}
    results: dict = {task: {size: {"local": [], "cluster": []} for size in sizes} for task in TASKS}
    os.environ["PYTHONPATH"] = str(ROOT / "src")  # the workers run this checkout's code, as the driver does
    try:
        for size, k in sizes.items():
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as builder:
                built = builder.submit(build_dataset, args.source, args.movies, args.seed, k, work / size / "dataset")
                print(f"{size}: {built.result()['movies']} movies", file=sys.stderr)
            datasets[size] = work / size / "dataset"
            repos[size], rows[size] = prepared_project(work / size, datasets[size])
        with (
            LocalCluster(n_workers=WORKERS, threads_per_worker=THREADS, processes=True, dashboard_address=None) as lc,
            Client(lc) as client,
        ):
            warm(client)
            for _ in range(args.repeat):
                for task in tasks:
                    for size in sizes:
                        for engine, address in (("local", None), ("cluster", lc.scheduler_address)):
                            got = run_task(task, repos[size], datasets[size], address, work / size)
                            results[task][size][engine].append(got)
                            print(f"  {task} {size} {engine}: {got['wall_s']:.1f} s, {got['peak_rss_mib']:.0f} MiB",
                                  file=sys.stderr)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    medians = {t: {s: {e: summary(r) for e, r in by.items()} for s, by in results[t].items()} for t in tasks}
    print(f"\ncores: {os.cpu_count()}, cluster: LocalCluster of {WORKERS} workers x {THREADS} thread, "
          f"repeats: {args.repeat}, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(table(medians, rows, list(sizes), tasks))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "results": results, "medians": medians}, indent=2))


if __name__ == "__main__":
    main()
