"""Combine the branches' probabilities: plain mean, fixed weights, or weights fitted on val.

All branches must describe the same movies (same ids, splits and order) and the same genres;
anything else is an error, because averaging misaligned rows produces plausible nonsense.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from moviegenre import probabilities
from moviegenre.errors import MovieGenreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BranchProbabilities:
    ids: np.ndarray
    split: np.ndarray
    by_branch: dict[str, np.ndarray]  # branch -> (n, n_genres)


def load_branches(
    branches: list[str], genres: list[str], directory: Path = probabilities.PREDICTIONS_DIR
) -> BranchProbabilities:
    """Read each branch's file and check that they line up row for row."""
    frames = {b: probabilities.read(directory / f"{b}.parquet", genres) for b in branches}
    first_name, first = next(iter(frames.items()))
    for name, frame in frames.items():
        if len(frame) != len(first) or not (frame["id"].to_numpy() == first["id"].to_numpy()).all():
            raise MovieGenreError(
                f"{directory / (name + '.parquet')}: its movies differ from {first_name}'s "
                f"({len(frame)} vs {len(first)} rows, or another order); rerun `dvc repro`"
            )
        if not (frame["split"].to_numpy() == first["split"].to_numpy()).all():
            raise MovieGenreError(f"{directory / (name + '.parquet')}: splits differ from {first_name}'s")
    return BranchProbabilities(
        first["id"].to_numpy(),
        first["split"].to_numpy(),
        {b: f[genres].to_numpy(dtype=np.float64) for b, f in frames.items()},
    )


def combine(by_branch: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the branches' probabilities.

    A NaN row means the branch could not see that movie (predict: no poster, or no plot);
    the weights are then renormalised over the branches that did, and a movie no branch
    saw stays NaN. The ensemble stage has no NaN, so there this is the plain weighted mean.
    """
    names = [b for b in weights if b in by_branch]
    stacked = np.stack([by_branch[b] for b in names])  # (branches, n, genres)
    seen = ~np.isnan(stacked)
    w = np.array([weights[b] for b in names], dtype=np.float64)[:, None, None] * seen
    total = w.sum(axis=0)
    combined = (np.where(seen, stacked, 0.0) * w).sum(axis=0) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, combined, np.nan)


def macro_auc_fast(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Macro ROC-AUC by the rank-sum formula, over genres with both classes; for weight search."""
    positives = y_true.sum(axis=0)
    ok = (positives > 0) & (positives < len(y_true))
    ranks = rankdata(scores[:, ok], axis=0)
    pos = positives[ok]
    neg = len(y_true) - pos
    rank_sum = (ranks * y_true[:, ok]).sum(axis=0)
    return float(np.mean((rank_sum - pos * (pos + 1) / 2) / (pos * neg)))


def fit_weights(by_branch: dict[str, np.ndarray], y_val: np.ndarray, step: float = 0.05) -> dict[str, float]:
    """Non-negative weights summing to 1 that maximise val macro ROC-AUC, by grid search.

    With four branches a 0.05 grid is 1,771 candidates: exhaustive, deterministic, and a
    couple of seconds, where a gradient method would need a smooth surrogate of AUC.
    """
    names = list(by_branch)
    units = round(1 / step)
    best, best_weights = -1.0, dict.fromkeys(names, 1.0 / len(names))
    for cut in itertools.combinations(range(units + len(names) - 1), len(names) - 1):
        bounds = (-1, *cut, units + len(names) - 1)
        counts = [bounds[i + 1] - bounds[i] - 1 for i in range(len(names))]
        weights = {n: c / units for n, c in zip(names, counts, strict=True)}
        if not any(weights.values()):
            continue
        score = macro_auc_fast(y_val, combine(by_branch, weights))
        if score > best + 1e-12:
            best, best_weights = score, weights
    log.info("val-fitted weights %s (val macro AUC %.4f)", best_weights, best)
    return best_weights


def choose_weights(
    method: str, settings_weights: dict[str, float], by_branch: dict[str, np.ndarray], y_val: np.ndarray
) -> dict[str, float]:
    """Weights per branch, normalised to sum to 1, for ``ensemble.method``."""
    if method == "mean":
        weights = dict.fromkeys(by_branch, 1.0)
    elif method == "weighted":
        missing = [b for b in by_branch if b not in settings_weights]
        if missing:
            raise MovieGenreError(f"params.yaml: 'ensemble.weights' has no weight for branch {missing[0]}")
        weights = {b: float(settings_weights[b]) for b in by_branch}
        if not sum(weights.values()) > 0:
            raise MovieGenreError("params.yaml: 'ensemble.weights' of the chosen branches sum to 0")
    else:
        weights = fit_weights(by_branch, y_val)
    total = sum(weights.values())
    return {b: round(w / total, 6) for b, w in weights.items()}


def per_genre_table(genres: list[str], y_test: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Test ROC-AUC per genre (rows) for each branch and the ensemble (columns)."""
    from moviegenre.evaluation import per_genre_auc

    table = pd.DataFrame({"genre": genres, "test_positives": y_test.sum(axis=0).astype(int)})
    for name, proba in scores.items():
        table[name] = np.round(per_genre_auc(y_test, proba), 6)
    return table


def run_ensemble(settings: dict, metrics_dir: Path = Path("metrics"), plots_dir: Path = Path("plots")) -> dict:
    """Combine the chosen branches; write metrics, per-genre table, ROC data and PNGs."""
    import time

    from moviegenre import figures
    from moviegenre.atomic import atomic_path, write_json
    from moviegenre.dataset import label_matrix, load_prepared
    from moviegenre.evaluation import split_scores

    table, genres = load_prepared()
    branches = list(dict.fromkeys(settings["branches"]))
    loaded = load_branches(branches, genres)
    by_id = table.set_index("id")
    labels = label_matrix(by_id.loc[loaded.ids, "genres"].tolist(), genres)
    val, test = loaded.split == "val", loaded.split == "test"

    started = time.perf_counter()
    weights = choose_weights(
        settings["method"], settings["weights"], {b: p[val] for b, p in loaded.by_branch.items()}, labels[val]
    )
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    proba = combine(loaded.by_branch, weights)
    predict_s = time.perf_counter() - started

    metrics = {
        "test": split_scores(labels[test], proba[test]),
        "val": split_scores(labels[val], proba[val]),
        "weights": weights,
        "seconds": {"fit": round(fit_s, 3), "predict": round(predict_s, 3)},
    }
    probabilities.write(
        probabilities.PREDICTIONS_DIR / "ensemble.parquet", pd.Series(loaded.ids), loaded.split, proba, genres
    )
    scores = {**{b: p[test] for b, p in loaded.by_branch.items()}, "ensemble": proba[test]}
    per_genre = per_genre_table(genres, labels[test], scores)
    with atomic_path(metrics_dir / "per_genre_auc.csv") as tmp:
        per_genre.to_csv(tmp, index=False)
    for name, values in scores.items():
        write_json(plots_dir / "roc" / f"{name}.json", figures.roc_points(labels[test], values))
    figures.per_genre_png(per_genre, plots_dir / "per_genre_auc.png")
    macro = {name: round(float(per_genre[name].mean()), 6) for name in scores}  # NaN genres skipped, as in split_scores
    figures.macro_png(macro, plots_dir / "macro_auc.png")
    write_json(metrics_dir / "ensemble.json", metrics)
    log.info(
        "ensemble (%s): test macro ROC-AUC %.4f; branches %s",
        settings["method"],
        metrics["test"]["roc_auc_macro"],
        macro,
    )
    return metrics
