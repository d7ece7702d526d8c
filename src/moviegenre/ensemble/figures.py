"""Figures of the ensemble stage: ROC data for `dvc plots`, and matplotlib PNGs."""

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


def roc_points(y_true: np.ndarray, proba: np.ndarray) -> list[dict[str, float]]:
    """Micro-averaged ROC curve sampled at 101 false-positive rates (small, diffable files)."""
    ok = scorable(y_true)
    fpr, tpr, _ = roc_curve(y_true[:, ok].ravel(), proba[:, ok].ravel())
    sampled = np.interp(FPR_GRID, fpr, tpr)
    return [{"fpr": round(float(f), 4), "tpr": round(float(t), 4)} for f, t in zip(FPR_GRID, sampled, strict=True)]


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


def macro_png(macro: dict[str, float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(macro)
    bars = ax.bar(names, [macro[n] for n in names], color=["C0"] * (len(names) - 1) + ["C3"])
    ax.bar_label(bars, fmt="%.3f")
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("test macro ROC-AUC")
    ax.set_title("Macro ROC-AUC by branch")
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
