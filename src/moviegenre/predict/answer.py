"""One movie's prediction as JSON: what `moviegenre predict --json` prints and what the server
answers. Both build it here, so the two cannot drift apart and the server needs nothing from
the command line."""

from __future__ import annotations

from typing import Any

import numpy as np


def seen_text(poster: bool, plot: bool) -> str:
    return "poster and plot" if poster and plot else ("poster only" if poster else "plot only")


def movie_json(
    genres: list[str], *, seen: str, branches: list[str], in_set: np.ndarray, ensemble: np.ndarray,
    by_branch: dict[str, np.ndarray] | None, top: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The genre set, then genres by ensemble probability (the ``top`` first; 0: all)."""
    order = np.argsort(-ensemble, kind="stable")
    shown = order[:top] if top else order
    out: dict[str, Any] = {
        "seen": seen,
        "branches": branches,
        "genres": [genres[g] for g in order if in_set[g]],
        "probabilities": {genres[g]: float(ensemble[g]) for g in shown},
    }
    if by_branch is not None:
        out["by_branch"] = {b: {genres[g]: float(p[g]) for g in shown} for b, p in by_branch.items()}
    return out
