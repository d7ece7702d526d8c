"""Figures of the ensemble stage: data for `dvc plots` (Vega), and matplotlib PNGs.

The Vega data are long tables, one file per chart, so that one chart compares every branch
(``roc.json``: a line per branch and the ensemble) or every genre (``thresholds.json``:
precision, recall and F1 of the genre set against the threshold); the templates that draw
them are ``.dvc/plots/*.json``. The PNGs also go into the PR report.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from moviegenre.core.files import atomic_path
from moviegenre.evaluation.metrics import scorable

FPR_GRID = np.linspace(0.0, 1.0, 101)


THRESHOLD_GRID = np.round(np.linspace(0.02, 0.98, 49), 2)


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """Micro-averaged ROC curve sampled at 101 false-positive rates (small, diffable files)."""
    ok = scorable(y_true)
    fpr, tpr, _ = roc_curve(y_true[:, ok].ravel(), proba[:, ok].ravel())
    sampled = np.interp(FPR_GRID, fpr, tpr)
    return [{"fpr": round(float(f), 4), "tpr": round(float(t), 4)} for f, t in zip(FPR_GRID, sampled, strict=True)]


def roc_rows(y_true: np.ndarray, scores: dict[str, np.ndarray]) -> list[dict[str, float | str]]:
    """Every branch's (and the ensemble's) ROC curve in one table, keyed by ``branch``."""
    return [{"branch": name, **point} for name, proba in scores.items() for point in roc_points(y_true, proba)]


def threshold_rows(genres: list[str], y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float | str]]:
    """Precision, recall and F1 of each genre's set against its threshold, on a grid of 49 cuts
    (precision only where the cut predicts the genre for some movie).

    Drawn on val, where the ensemble fits each genre's threshold (its F1 maximum), so the curve
    shows how sharp that choice is. A genre without positives is left out.
    """
    rows: list[dict[str, float | str]] = []
    for g, genre in enumerate(genres):
        truth, values = y_true[:, g].astype(bool), proba[:, g]
        if not truth.any():
            continue
        for cut in THRESHOLD_GRID:
            chosen = values >= cut
            hits = int((chosen & truth).sum())
            recall = hits / int(truth.sum())
            precision = hits / int(chosen.sum()) if chosen.any() else None  # no genre set: no precision
            f1 = 2 * precision * recall / (precision + recall) if precision and hits else 0.0
            for measure, value in (("precision", precision), ("recall", recall), ("F1", f1)):
                if value is not None:
                    rows.append({"genre": genre, "threshold": float(cut), "measure": measure, "value": round(value, 4)})
    return rows


def per_genre_png(table: pd.DataFrame, path: Path) -> None:
    """Horizontal grouped bars: test ROC-AUC per genre for every branch and the ensemble."""
    columns = [c for c in table.columns if c not in ("genre", "test_positives")]
    ordered = table.sort_values(columns[-1])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ordered) + 1.5))
    height = 0.8 / len(columns)
    for i, column in enumerate(columns):
        ax.barh(np.arange(len(ordered)) + i * height, ordered[column], height, label=column)
    ax.set_yticks(np.arange(len(ordered)) + 0.4 - height / 2)
    ax.set_yticklabels([f"{g} ({n})" for g, n in zip(ordered["genre"], ordered["test_positives"], strict=True)])
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("test ROC-AUC (genre, test positives)")
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title("ROC-AUC per genre")
    _save(fig, path)


def macro_png(macro: dict[str, float], intervals: dict[str, list[float]], path: Path) -> None:
    """Test macro ROC-AUC by branch, the ensemble last, each with its 95% bootstrap interval."""
    names = list(macro)
    values = np.array([macro[n] for n in names])
    low = np.array([intervals[n][0] for n in names])
    high = np.array([intervals[n][1] for n in names])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 1.5), 4.2))
    colours = ["C0"] * (len(names) - 1) + ["C3"]
    bars = ax.bar(names, values, color=colours, yerr=[values - low, high - values], capsize=4,
                  error_kw={"elinewidth": 1, "ecolor": "black"})  # fmt: skip
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, fontsize="small", label_type="center",
                 color="white")  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("test macro ROC-AUC (95% interval)")
    ax.set_title("Macro ROC-AUC by branch")
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
