"""How the pipeline's cost grows with the data: every stage at k = 1, 2, 4 times the movies.

For each k it builds a synthetic MM-IMDb dataset k times the base set (``--limit`` movies
sampled from the shared archive, or all of them), then runs every stage of dvc.yaml in a
throw-away copy of the project (its own ``src``, ``params.yaml`` with ``data.source``
pointing at the dataset), one process per stage, and records each stage's wall time, CPU
time and peak RSS (from wait4). The table ends with the growth exponent of each stage,
log(cost_k / cost_1) / log(k): 1 is linear, 2 quadratic, under 1 a fixed cost dominating.

The synthetic movies: copy 0 is the base set as it is; copy j > 0 of a movie keeps its
genres, gets a new id (``<id>_<j>``), its poster randomly cropped (up to 5% a side, resized
back) and brightened or darkened (up to 15%), and a plot of as many sentences as its own,
drawn from the sentences of the base movies with the same genre set. Movies without a
poster stay without one.

    python benchmarks/scale.py --limit 300                      # k = 1, 2, 4 on 300, 600, 1200 movies
    python benchmarks/scale.py --k 1 2 4 --encoder-max-k 2      # full size; embed_text only at k <= 2
    python benchmarks/scale.py --limit 300 --skip-stage train@fusion --set image_dl.epochs=5
    python benchmarks/scale.py --build-only out/ --k 2          # write the k=2 dataset and stop

Each dataset is built in a process of its own. On Linux a child's peak RSS (``ru_maxrss``)
starts at its parent's resident memory when it was forked, so a benchmark that held the
k=4 movies (about 560 MiB) reported that much for every stage it started, even a 100 MiB
one; kept small, it leaves each stage's figure its own.

Stages are run directly (``python stages/<stage>.py``, as dvc.yaml's ``cmd``), not through
``dvc repro``, so the figures are the stages' own. A skipped stage (``--skip-stage``, or
embed_text above ``--encoder-max-k``) skips what reads its outputs, and the ensemble then
combines the branches that ran.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml
from dvc_stages import resolved_stages  # benchmarks/, the script's own folder
from process_cost import measure

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "datasets" / "mmimdb-subset.tar.gz"
COPIED = ("dvc.yaml", "params.yaml", "stages", "src")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
ENCODER_STAGES = ("embed_text",)


# -- the synthetic dataset --------------------------------------------------------------
def read_base(source: Path, limit: int | None, seed: int) -> list[dict]:
    """Movies of an MM-IMDb source (a .tar/.tar.gz or a directory): id, record, poster bytes.

    With ``limit``, a seeded sample of that many movies (the archive is read twice: once for
    the names, once for the chosen files).
    """
    if source.is_dir():
        records = {p.stem: p for p in source.rglob("*.json")}
        chosen = _choose(sorted(records), limit, seed)
        movies = []
        for movie_id in chosen:
            path = records[movie_id]
            poster = next((path.with_suffix(s) for s in (".jpeg", ".jpg") if path.with_suffix(s).is_file()), None)
            movies.append(_movie(movie_id, path.read_bytes(), poster.read_bytes() if poster else None))
        return movies
    with tarfile.open(source) as tar:
        names = [m.name for m in tar if m.isfile() and m.name.endswith(".json")]
    chosen = set(_choose(sorted(Path(n).stem for n in names), limit, seed))
    found: dict[str, dict[str, bytes]] = defaultdict(dict)
    with tarfile.open(source) as tar:
        for member in tar:
            path = Path(member.name)
            if member.isfile() and path.stem in chosen and path.suffix in (".json", ".jpeg", ".jpg"):
                handle = tar.extractfile(member)
                found[path.stem]["json" if path.suffix == ".json" else "poster"] = handle.read() if handle else b""
    return [_movie(i, found[i]["json"], found[i].get("poster")) for i in sorted(found) if "json" in found[i]]


def _choose(ids: list[str], limit: int | None, seed: int) -> list[str]:
    if limit is None or limit >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, limit))


def _movie(movie_id: str, record: bytes, poster: bytes | None) -> dict:
    data = json.loads(record)
    plots = data.get("plot") or []
    plots = [plots] if isinstance(plots, str) else [p for p in plots if isinstance(p, str)]
    return {
        "id": movie_id,
        "title": data.get("title"),
        "year": data.get("year"),
        "genres": [g for g in data.get("genres") or [] if isinstance(g, str)],
        "plot": max(plots, key=len, default=""),
        "poster": poster,
    }


def jitter_poster(poster: bytes, seed: int) -> bytes:
    """The poster cropped by up to 5% a side (resized back) and brightness scaled by 0.85-1.15."""
    from PIL import Image, ImageEnhance

    rng = random.Random(seed)
    with Image.open(io.BytesIO(poster)) as image:
        image = image.convert("RGB")
        width, height = image.size
        box = (
            round(rng.uniform(0, 0.05) * width),
            round(rng.uniform(0, 0.05) * height),
            width - round(rng.uniform(0, 0.05) * width),
            height - round(rng.uniform(0, 0.05) * height),
        )
        image = image.crop(box).resize((width, height), Image.Resampling.BILINEAR)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _jitter_job(job: tuple[bytes, int]) -> bytes:
    return jitter_poster(*job)


def synthetic_movies(base: list[dict], k: int, seed: int) -> list[dict]:
    """``base`` plus k - 1 jittered, recombined copies of it (posters as bytes, jittered lazily)."""
    by_genres: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for movie in base:
        by_genres[tuple(sorted(movie["genres"]))].extend(s for s in _SENTENCE.split(movie["plot"].strip()) if s)
    out = [dict(movie) for movie in base]
    for copy in range(1, k):
        rng = random.Random(f"{seed}-{copy}")
        for movie in base:
            own = [s for s in _SENTENCE.split(movie["plot"].strip()) if s]
            pool = by_genres[tuple(sorted(movie["genres"]))]
            count = max(1, len(own))
            sentences = rng.sample(pool, count) if len(pool) >= count else [rng.choice(pool) for _ in own] or own
            out.append(
                {
                    "id": f"{movie['id']}_{copy}",
                    "title": f"{movie['title']} ({copy})" if movie["title"] else None,
                    "year": movie["year"],
                    "genres": list(movie["genres"]),
                    "plot": " ".join(sentences),
                    "poster": (movie["poster"], rng.randrange(2**31)) if movie["poster"] else None,
                }
            )
    return out


def write_dataset(movies: list[dict], out: Path, workers: int = 0) -> Path:
    """The MM-IMDb layout under ``out/mmimdb/dataset``; posters to jitter are jittered in parallel."""
    dataset = out / "mmimdb" / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    jobs = [(i, m["poster"]) for i, m in enumerate(movies) if isinstance(m["poster"], tuple)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        done = pool.map(_jitter_job, [job for _, job in jobs], chunksize=32)
        jittered = dict(zip((i for i, _ in jobs), done, strict=True))
    for i, movie in enumerate(movies):
        record = {"title": movie["title"], "year": movie["year"], "genres": movie["genres"], "plot": [movie["plot"]]}
        (dataset / f"{movie['id']}.json").write_text(json.dumps(record))
        poster = jittered.get(i, movie["poster"])
        if poster:
            (dataset / f"{movie['id']}.jpeg").write_bytes(poster)
    return dataset


# -- running the stages -------------------------------------------------------------------
def build_dataset(source: Path, limit: int | None, seed: int, k: int, out: Path) -> dict:
    """Read the base set, write its k-fold synthetic copy under ``out``; its size and build time.
    Run in a child process (see the module's docstring)."""
    began = time.perf_counter()
    movies = synthetic_movies(read_base(source, limit, seed), k, seed)
    files = list(write_dataset(movies, out).iterdir())
    return {
        "movies": len(movies),
        "posters": sum(1 for m in movies if m["poster"]),
        "mb": sum(f.stat().st_size for f in files) / 1e6,
        "build_s": time.perf_counter() - began,
    }


def copy_project(dest: Path, overrides: dict[str, object]) -> Path:
    """The code and params of this project in ``dest``; relative sources/presets made absolute."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src, dst = ROOT / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dst)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    preset = params["embed_text"]["preset"]
    if "://" not in preset and not Path(preset).is_absolute():
        params["embed_text"]["preset"] = str((ROOT / preset).resolve())
    for dotted, value in overrides.items():
        section, *keys = dotted.split(".")
        target = params[section]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def downstream(stages: dict[str, dict], skipped: set[str]) -> set[str]:
    """``skipped`` and every stage that reads what they write (the ensemble excepted: it drops branches)."""
    out = set(skipped)
    changed = True
    while changed:
        changed = False
        written = [o for s in out for o in stages[s]["outs"]]
        for name, stage in stages.items():
            if name in out or name == "ensemble":
                continue
            deps = stage["deps"]
            if any(_overlap(d, w) for d in deps for w in written):
                out.add(name)
                changed = True
    return out


def _overlap(dep: str, written: str) -> bool:
    """Whether a stage that depends on ``dep`` reads ``written`` (the same path, or one inside the other)."""
    dep, written = dep.rstrip("/"), written.rstrip("/")
    return dep == written or dep.startswith(written + "/") or written.startswith(dep + "/")


def stage_environment(repo: Path) -> dict[str, str]:
    """What a stage of ``repo`` runs in: that copy's code, this interpreter's bin first, quiet TensorFlow."""
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_pipeline(repo: Path, skipped: set[str]) -> dict[str, dict[str, float] | None]:
    stages = resolved_stages(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    trained = {name.removeprefix("train@") for name in stages if name.startswith("train@")}
    dropped = {b for b in params["ensemble"]["branches"] if b in trained and f"train@{b}" in skipped}
    if dropped:
        params["ensemble"]["branches"] = [b for b in params["ensemble"]["branches"] if b not in dropped]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = stage_environment(repo)
    results: dict[str, dict[str, float] | None] = {}
    for name, stage in stages.items():
        if name in skipped:
            results[name] = None
            continue
        command = stage["cmd"].split()
        if command[0] == "python":
            command[0] = sys.executable
        print(f"  {name} ...", end="", flush=True, file=sys.stderr)
        results[name] = measure(command, repo, env)
        print(f" {results[name]['wall_s']:.1f} s", file=sys.stderr)
    return results


# -- the report -------------------------------------------------------------------------
def exponent(cost_k: float, cost_1: float, k: int) -> float:
    return math.log(cost_k / cost_1) / math.log(k) if cost_1 > 0 and cost_k > 0 and k > 1 else float("nan")


def table(runs: dict[int, dict], sizes: dict[int, dict]) -> str:
    ks = sorted(runs)
    stages = list(next(iter(runs.values())))
    lines = ["| k | movies | with poster | dataset MB | build s |", "|---:|---:|---:|---:|---:|"]
    lines += [
        f"| {k} | {sizes[k]['movies']} | {sizes[k]['posters']} | {sizes[k]['mb']:.1f} | {sizes[k]['build_s']:.1f} |"
        for k in ks
    ]
    head = "| stage | " + " | ".join(f"k={k} wall s | k={k} CPU s | k={k} RSS MiB" for k in ks)
    growth = [k for k in ks if k > 1]
    head += " | " + " | ".join(f"exp wall k={k} | exp CPU k={k}" for k in growth) + " |"
    lines += ["", head, "|---|" + "---:|" * (3 * len(ks) + 2 * len(growth))]
    totals = {k: {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mib": 0.0} for k in ks}
    complete = {k: True for k in ks}
    for stage in stages:
        cells = []
        for k in ks:
            r = runs[k].get(stage)
            if r is None:
                cells.append("— | — | —")
                complete[k] = False
                continue
            cells.append(f"{r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f}")
            totals[k]["wall_s"] += r["wall_s"]
            totals[k]["cpu_s"] += r["cpu_s"]
            totals[k]["peak_rss_mib"] = max(totals[k]["peak_rss_mib"], r["peak_rss_mib"])
        base = runs[ks[0]].get(stage)
        for k in growth:
            r = runs[k].get(stage)
            if base is None or r is None:
                cells.append("— | —")
            else:
                scale = k / ks[0]
                wall = exponent(r["wall_s"], base["wall_s"], scale)
                cpu = exponent(r["cpu_s"], base["cpu_s"], scale)
                cells.append(f"{wall:.2f} | {cpu:.2f}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    cells = [f"{totals[k]['wall_s']:.1f} | {totals[k]['cpu_s']:.1f} | {totals[k]['peak_rss_mib']:.0f}" for k in ks]
    for k in growth:
        scale = k / ks[0]
        if complete[k] and complete[ks[0]]:
            wall = exponent(totals[k]["wall_s"], totals[ks[0]]["wall_s"], scale)
            cpu = exponent(totals[k]["cpu_s"], totals[ks[0]]["cpu_s"], scale)
            cells.append(f"{wall:.2f} | {cpu:.2f}")
        else:
            cells.append("— | —")  # stages skipped at some k: totals would not compare
    lines.append("| **all stages** (RSS: the largest) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 4], help="multiples of the base set")
    parser.add_argument("--limit", type=int, help="base set: this many movies sampled from --source (default all)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="MM-IMDb archive or directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-stage", action="append", default=[], help="leave this stage out (repeatable)")
    parser.add_argument("--encoder-max-k", type=int, help="run embed_text (and what reads it) only up to this k")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a param in the copies (YAML value; repeatable)")  # fmt: skip
    parser.add_argument("--keep", type=Path, help="keep the datasets and project copies under this directory")
    parser.add_argument("--build-only", type=Path, metavar="DIR", help="write the datasets under DIR and stop")
    parser.add_argument("--json", type=Path, help="write the raw figures here too")
    args = parser.parse_args()
    if sorted(set(args.k)) != sorted(args.k) or min(args.k) < 1:
        raise SystemExit("--k: distinct positive multiples, e.g. --k 1 2 4")
    overrides: dict[str, object] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    stages = resolved_stages(ROOT)
    unknown = set(args.skip_stage) - set(stages)
    if unknown:
        raise SystemExit(f"--skip-stage: unknown stage(s) {', '.join(sorted(unknown))} (known: {', '.join(stages)})")

    work = args.build_only or args.keep or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    runs: dict[int, dict] = {}
    sizes: dict[int, dict] = {}
    try:
        for k in sorted(args.k):
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as builder:
                job = builder.submit(build_dataset, args.source, args.limit, args.seed, k, work / f"k{k}" / "dataset")
                sizes[k] = job.result()
            print(f"k={k}: {sizes[k]['movies']} movies, {sizes[k]['mb']:.0f} MB", file=sys.stderr)
            if args.build_only:
                continue
            skipped = set(args.skip_stage)
            if args.encoder_max_k is not None and k > args.encoder_max_k:
                skipped |= set(ENCODER_STAGES)
            skipped = downstream(stages, skipped)
            data = {"data.source": str(work / f"k{k}" / "dataset"), "data.sha256": None, "data.limit": None}
            repo = copy_project(work / f"k{k}" / "project", data | overrides)
            runs[k] = run_pipeline(repo, skipped)
    finally:
        if not (args.keep or args.build_only):
            shutil.rmtree(work, ignore_errors=True)
    if args.build_only:
        return
    base_movies = sizes[min(sizes)]["movies"] // min(sizes)
    print(f"\nbase: {base_movies} movies (--limit {args.limit}), cores: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}; overrides: {overrides or 'none'}")  # fmt: skip
    print(table(runs, sizes))
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "runs": runs, "overrides": overrides}, indent=2))


if __name__ == "__main__":
    main()
