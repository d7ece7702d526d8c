"""Figures of the ensemble stage: data for `dvc plots` (Vega), and matplotlib PNGs.

The Vega data are long tables, one file per chart, so that one chart compares every branch
(``roc.json``: a line per branch and the ensemble) or every genre (``thresholds.json``:
precision, recall and F1 of the genre set against the threshold, with the threshold the
ensemble fitted); the templates that draw them are ``.dvc/plots/*.json``. The PNGs also go
into the PR report.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # stages run headless
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from moviegenre.core.files import atomic_path
from moviegenre.evaluation.metrics import scorable

FPR_GRID = np.linspace(0.0, 1.0, 101)


THRESHOLD_GRID = np.round(np.linspace(0.02, 0.98, 49), 2)

# The series colours, here and in .dvc/plots/ (roc_by_branch, learning_rate; a test checks they
# are the same): black for the ensemble, which the ROC template sorts first, then Tableau 20's
# ten strong colours and its ten light ones, so no two of up to 20 branches share a colour.
PALETTE = (
    "#000000", "#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9e765f", "#439894", "#b79a20", "#d67195",
    "#79706e", "#9ecae9", "#ffbf79", "#88d27a", "#ff9d98", "#d6a5c9", "#d8b5a5", "#83bcb6", "#f2cf5b", "#fcbfd2",
    "#bab0ac",
)  # fmt: skip
LEGEND_COLUMNS = 5


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """Micro-averaged ROC curve sampled at 101 false-positive rates (small, diffable files)."""
    ok = scorable(y_true)
    fpr, tpr, _ = roc_curve(y_true[:, ok].ravel(), proba[:, ok].ravel())
    sampled = np.interp(FPR_GRID, fpr, tpr)
    return [{"fpr": round(float(f), 4), "tpr": round(float(t), 4)} for f, t in zip(FPR_GRID, sampled, strict=True)]


def roc_rows(y_true: np.ndarray, scores: dict[str, np.ndarray]) -> list[dict[str, float | str]]:
    """Every branch's (and the ensemble's) ROC curve in one table, keyed by ``branch``."""
    return [{"branch": name, **point} for name, proba in scores.items() for point in roc_points(y_true, proba)]


def threshold_rows(
    genres: list[str], y_true: np.ndarray, proba: np.ndarray, fitted: list[float]
) -> list[dict[str, float | str]]:
    """Precision, recall and F1 of each genre's set against its threshold, on a grid of 49 cuts
    (precision only where the cut predicts the genre for some movie), each row with ``fitted``,
    the genre's threshold as the ensemble fitted it.

    Drawn on val, where the ensemble fits the thresholds, so the chart shows where the fitted
    one sits on the curves and how sharp the choice is. Every row carries it, because DVC reads
    a plot file as rows with the same fields. A genre without positives is left out.
    """
    if len(fitted) != len(genres):
        raise ValueError(f"{len(fitted)} fitted thresholds for {len(genres)} genres")
    rows: list[dict[str, float | str]] = []
    for g, genre in enumerate(genres):
        truth, values = y_true[:, g].astype(bool), proba[:, g]
        if not truth.any():
            continue
        at = round(float(fitted[g]), 4)
        for cut in THRESHOLD_GRID:
            chosen = values >= cut
            hits = int((chosen & truth).sum())
            recall = hits / int(truth.sum())
            precision = hits / int(chosen.sum()) if chosen.any() else None  # no genre set: no precision
            f1 = 2 * precision * recall / (precision + recall) if precision and hits else 0.0
            for measure, value in (("precision", precision), ("recall", recall), ("F1", f1)):
                if value is not None:
                    rows.append({"genre": genre, "threshold": float(cut), "measure": measure,
                                 "value": round(value, 4), "fitted": at})  # fmt: skip
    return rows


def per_genre_png(table: pd.DataFrame, path: Path) -> None:
    """Horizontal grouped bars: test ROC-AUC per genre for every branch and the ensemble."""
    _save(per_genre_figure(table), path)


def per_genre_figure(table: pd.DataFrame) -> Figure:
    """The per-genre bars, a colour per branch (``series_colours``), each genre's bars top to bottom
    in the table's order; the legend reads in that order, in a band of its own below the axes
    where it hides no bar."""
    columns = [c for c in table.columns if c not in ("genre", "test_positives")]
    colours = series_colours(columns)
    ordered = table.sort_values(columns[-1])
    rows = -(-len(columns) // LEGEND_COLUMNS)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ordered) + 1.8 + 0.25 * rows), layout="constrained")
    height = 0.8 / len(columns)
    for i, column in enumerate(columns):
        offset = (len(columns) - 1 - i) * height  # the first series on top
        ax.barh(np.arange(len(ordered)) + offset, ordered[column], height, label=column, color=colours[column])
    ax.set_yticks(np.arange(len(ordered)) + 0.4 - height / 2)
    ax.set_yticklabels([f"{g} ({n})" for g, n in zip(ordered["genre"], ordered["test_positives"], strict=True)])
    ax.axvline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("test ROC-AUC (genre, test positives)")
    ax.set_title("ROC-AUC per genre")
    handles, labels = ax.get_legend_handles_labels()
    # matplotlib fills a legend column by column; this order makes it read row by row
    order = [i for column in range(LEGEND_COLUMNS) for i in range(column, len(labels), LEGEND_COLUMNS)]
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
               ncols=LEGEND_COLUMNS, fontsize="small", frameon=False)  # fmt: skip
    return fig


def series_colours(names: list[str]) -> dict[str, str]:
    """Black for the ensemble; the branches take the rest of ``PALETTE`` in order (cycling past 20)."""
    branches = [n for n in names if n != "ensemble"]
    colours = {name: PALETTE[1 + i % (len(PALETTE) - 1)] for i, name in enumerate(branches)}
    return colours | ({"ensemble": PALETTE[0]} if "ensemble" in names else {})


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


def _save(fig: Figure, path: Path) -> None:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
