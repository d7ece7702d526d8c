"""Benchmark the pipeline: per-stage time, CPU and memory, throughputs, and AUC beside the seed.

Runs every stage of dvc.yaml from a clean state in a throw-away copy of the project (the
working copy and its outputs are left alone), one `dvc repro --single-item --force` process
per stage, so each stage's wall time, CPU time and peak resident memory are its own. Then a
no-op `dvc repro`, a decode micro-benchmark, and the seed project's exact classical
configuration on the same split, so that both time and AUC compare on one machine in one run.

    python benchmarks/pipeline.py                  # full run, one repeat, table on stdout
    python benchmarks/pipeline.py --repeat 3       # medians of three runs
    python benchmarks/pipeline.py --quick          # data.limit movies only
    python benchmarks/pipeline.py --json out.json  # machine-readable results too
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dvc_stages import resolved_stages  # noqa: E402  (benchmarks/, the script's own folder)
from process_cost import measure  # noqa: E402

from moviegenre.core.stage import setup_logging  # noqa: E402

log = logging.getLogger("benchmark")

COPIED = ("dvc.yaml", "params.yaml", "stages", "src", ".dvcignore", ".gitignore", ".dvc/config")
SEED_REPORTED = {  # test macro ROC-AUC reported by the seed project (course slides, MM-IMDb)
    "image_ml": ("ExtraTrees 220/10 on PCA 40 of greyscale posters", 0.615),
    "text_ml": ("RandomForest 220/10 on TF-IDF", 0.824),
    "image_dl": ("CNN on greyscale posters", 0.499),
    "text_dl": ("dense NN on counts (LSTM: 0.542)", 0.806),
}


def copy_project(dest: Path, overrides: dict) -> Path:
    for name in COPIED:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, key in (("data", "source"), ("embed_text", "preset")):  # relative to the project, not the copy
        value = params[section][key]
        if "://" not in value and not Path(value).is_absolute():
            params[section][key] = str((ROOT / value).resolve())
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        params[section][key] = value
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = _env()
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "benchmark copy"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    cache = ROOT / "data" / "cache"  # reuse fetched archives; never written by the benchmark
    if cache.is_dir():
        shutil.copytree(cache, dest / "data" / "cache")
    return dest


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GIT_AUTHOR_NAME": "benchmark",
        "GIT_AUTHOR_EMAIL": "benchmark@localhost",
        "GIT_COMMITTER_NAME": "benchmark",
        "GIT_COMMITTER_EMAIL": "benchmark@localhost",
    }


def run_pipeline(repo: Path) -> dict:
    stages = list(resolved_stages(repo))
    dvc = [sys.executable, "-m", "dvc"]
    results: dict = {"stages": {}}
    for stage in stages:
        log.info("stage %s", stage)
        results["stages"][stage] = measure([*dvc, "repro", "--single-item", "--force", stage], repo, _env())
    results["noop_repro_s"] = measure([*dvc, "repro"], repo, _env())["wall_s"]
    results["metrics"] = {p.stem: json.loads(p.read_text()) for p in sorted((repo / "metrics").glob("*.json"))}
    results["timings"] = {
        p.stem: json.loads(p.read_text()) for p in sorted((repo / "metrics" / "timings").glob("*.json"))
    }
    results["decode_posters_per_s"] = in_child("decode", repo)
    if "embed_text" in stages:
        results["encoder"] = in_child("encoder", repo)
    return results


def in_child(what: str, repo: Path):
    """Run a measurement in a child process so this one stays small.

    A child's peak RSS starts at its parent's when it is forked, so a parent that had
    loaded TensorFlow or scikit-learn would inflate every later stage's measurement.
    """
    done = subprocess.run(
        [sys.executable, __file__, "--child", what, "--repo", str(repo)],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def decode_rate(repo: Path) -> float:
    """Posters decoded per second by featurize_images' decoder with the run's settings."""
    os.chdir(repo)
    from moviegenre.config.params import load_settings
    from moviegenre.data.table import load_prepared
    from moviegenre.features.images import ImagesSettings, decode_all

    settings = load_settings(ImagesSettings, "images")
    table, _ = load_prepared(Path("data/prepared"))
    paths = table.loc[table["poster"].notna(), "poster"].tolist()
    started = time.perf_counter()
    decode_all(paths, settings.height, settings.width, settings.workers)
    return len(paths) / (time.perf_counter() - started)


def encoder_rates(repo: Path, n: int = 256, repeat: int = 3) -> dict:
    """Plots/s of the embed_text encoder and of a straightforward loop, side by side on one sample.

    The straightforward loop is the reference: every plot padded to 256 tokens,
    batches of 64, the backbone called eagerly. Both run ``repeat`` times, alternating, after a
    warm-up; medians are reported.
    """
    import numpy as np

    os.chdir(repo)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from encoder import straightforward

    from moviegenre.config.params import load_settings
    from moviegenre.data.table import load_prepared
    from moviegenre.features.sentence_encoder import EmbedTextSettings, SentenceEncoder, resolve_precision

    settings = load_settings(EmbedTextSettings, "embed_text")
    table, _ = load_prepared(Path("data/prepared"))
    rng = np.random.default_rng(0)
    texts = [table["plot"].iloc[i] for i in rng.choice(len(table), size=min(n, len(table)), replace=False)]
    precision = resolve_precision(settings.precision)
    encoder = SentenceEncoder.load(settings.preset, None, settings.sequence_length, precision=precision)
    reference = SentenceEncoder.load(settings.preset, None, 256)
    encoder.encode(texts[:32], settings.batch_size, progress=False)  # warm-up: traces the graph
    straightforward(reference, texts[:64])
    ours, theirs = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        encoder.encode(texts, settings.batch_size, progress=False)
        ours.append(len(texts) / (time.perf_counter() - started))
        started = time.perf_counter()
        straightforward(reference, texts)
        theirs.append(len(texts) / (time.perf_counter() - started))
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "plots": len(texts),
        "precision": precision,
        "encoder_plots_per_s": ours_median,
        "straightforward_plots_per_s": theirs_median,
        "speedup": ours_median / theirs_median,
    }


def seed_reference(repo: Path) -> dict:
    """The seed's classical configuration, trained on the movies with a poster, same test split."""
    import numpy as np
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer

    from moviegenre.branches.forests import positive_proba
    from moviegenre.data.table import label_matrix, load_prepared
    from moviegenre.evaluation.metrics import split_scores
    from moviegenre.features.images import PosterFeaturizer
    from moviegenre.features.store import load_index

    os.chdir(repo)
    table, genres = load_prepared(Path("data/prepared"))
    features_dir = Path("data/features/images")
    index = load_index(features_dir)
    complete = table.set_index("id").loc[index["id"]].reset_index()
    labels = label_matrix(complete["genres"], genres)
    train = (index["split"] == "train").to_numpy()
    test = (index["split"] == "test").to_numpy()
    seed = yaml.safe_load(Path("params.yaml").read_text())["seed"]
    out = {}

    started = time.perf_counter()
    grey = np.load(features_dir / "grey.npy")
    components = PosterFeaturizer.fit(grey[train], 40, seed).pca_transform(grey)
    trees = ExtraTreesClassifier(n_estimators=220, max_depth=10, random_state=seed, n_jobs=-1)
    trees.fit(components[train], labels[train])
    proba = positive_proba(trees, components[test])
    out["image_ml"] = {"test": split_scores(labels[test], proba), "seconds": time.perf_counter() - started}

    started = time.perf_counter()
    vectoriser = TfidfVectorizer().fit(complete.loc[train, "plot"])
    tfidf = vectoriser.transform(complete["plot"])
    forest = RandomForestClassifier(n_estimators=220, max_depth=10, random_state=seed, n_jobs=-1)
    forest.fit(tfidf[train], labels[train])
    proba = positive_proba(forest, tfidf[test])
    out["text_ml"] = {"test": split_scores(labels[test], proba), "seconds": time.perf_counter() - started}
    return out


def median_of(runs: list[dict], *path: str) -> float:
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def report(runs: list[dict], reference: dict, quick: bool) -> str:
    first = runs[0]
    lines = [
        f"moviegenre benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{'quick (data.limit)' if quick else 'full dataset'}, median of {len(runs)} run(s)",
        "",
        "| stage | wall s | CPU s | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for stage in first["stages"]:
        lines.append(
            f"| {stage} | {median_of(runs, 'stages', stage, 'wall_s'):.1f} "
            f"| {median_of(runs, 'stages', stage, 'cpu_s'):.1f} "
            f"| {median_of(runs, 'stages', stage, 'peak_rss_mib'):.0f} |"
        )
    total = statistics.median(sum(s["wall_s"] for s in r["stages"].values()) for r in runs)
    total_cpu = statistics.median(sum(s["cpu_s"] for s in r["stages"].values()) for r in runs)
    peak = max(max(s["peak_rss_mib"] for s in r["stages"].values()) for r in runs)
    lines += [
        f"| **total** | **{total:.1f}** | **{total_cpu:.1f}** | **{peak:.0f}** (max) |",
        f"| no-op `dvc repro` | {median_of(runs, 'noop_repro_s'):.1f} | | |",
        "",
        "| throughput | median |",
        "|---|---:|",
        f"| posters decoded/s (featurize_images) | {median_of(runs, 'decode_posters_per_s'):.0f} |",
    ]
    if "encoder" in first:
        encoder = first["encoder"]
        lines += [
            f"| plots encoded/s, embed_text stage (all plots, {encoder['precision']}) | "
            f"{median_of(runs, 'timings', 'embed_text', 'plots_per_s'):.1f} |",
            f"| plots encoded/s, embed_text's encoder ({encoder['plots']} plots) | "
            f"{median_of(runs, 'encoder', 'encoder_plots_per_s'):.1f} |",
            f"| plots encoded/s, straightforward loop (same plots; 256 tokens, batch 64, eager) | "
            f"{median_of(runs, 'encoder', 'straightforward_plots_per_s'):.1f} |",
            f"| encoder speed-up over the straightforward loop | {median_of(runs, 'encoder', 'speedup'):.2f}x |",
        ]
    for branch, unit in (("image_dl", "images"), ("text_dl", "sequences")):
        if branch in first["timings"] and "train_per_s" in first["timings"][branch].get("throughput", {}):
            lines.append(
                f"| training {unit}/s ({branch}) | "
                f"{median_of(runs, 'timings', branch, 'throughput', 'train_per_s'):.0f} |"
            )
    lines += [
        "",
        "| branch | test macro ROC-AUC (this run) | seed reference, same split | seed project reported |",
        "|---|---:|---:|---:|",
    ]
    for branch in ("image_ml", "text_ml", "image_dl", "text_dl", "text_encoder", "fusion", "ensemble"):
        if branch not in first["metrics"]:
            continue
        ours = median_of(runs, "metrics", branch, "test", "roc_auc_macro")
        ref = reference.get(branch)
        ref_text = f"{ref['test']['roc_auc_macro']:.3f} ({ref['seconds']:.0f} s)" if ref else "—"
        reported = SEED_REPORTED.get(branch)
        lines.append(f"| {branch} | {ours:.3f} | {ref_text} | {f'{reported[1]:.3f}' if reported else '—'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs to take the median of")
    parser.add_argument("--quick", action="store_true", help="run on data.limit movies only")
    parser.add_argument("--limit", type=int, default=300, help="data.limit for --quick")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--no-reference", action="store_true", help="skip the seed configuration")
    parser.add_argument("--child", choices=["decode", "reference", "encoder"], help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = {"decode": decode_rate, "reference": seed_reference, "encoder": encoder_rates}[args.child]
        print(json.dumps(child(args.repo)))
        return
    setup_logging()
    overrides = {"data.limit": args.limit} if args.quick else {}
    runs, reference = [], {}
    for repeat in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="moviegenre-bench-") as tmp:
            log.info("run %d of %d in %s", repeat + 1, args.repeat, tmp)
            repo = copy_project(Path(tmp), overrides)
            runs.append(run_pipeline(repo))
            if repeat == 0 and not args.no_reference:
                reference = in_child("reference", repo)
    table = report(runs, reference, args.quick)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "seed_reference": reference}, indent=2))


if __name__ == "__main__":
    main()
