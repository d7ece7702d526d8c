"""Which branches a revision scored and their macro ROC-AUC per split, with its interval.

The names are read from the revisions, never listed here, so a new branch appears in the report
(as ``new``) without a change to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from moviegenre.branches.registry import NAMES
from moviegenre.cli.report.revisions import SUMMARY, Tree, read_json

SPLITS = ("val", "test")


@dataclass(frozen=True)
class Score:
    """One macro ROC-AUC and its 95% bootstrap interval, where the metrics file gives one."""

    value: float
    ci95: tuple[float, float] | None = None


def scored_names(tree: Tree) -> list[str]:
    """Names of the metrics files in the metrics contract (a ``test`` block with a macro AUC):
    a branch the ensemble leaves out of the summary is still reported."""
    names = []
    for file in tree.names("metrics"):
        block = read_json(tree, f"metrics/{file}").get("test") if file.endswith(".json") else None
        if isinstance(block, dict) and "roc_auc_macro" in block:
            names.append(file[: -len(".json")])
    return names


def branch_names(summaries: Iterable[dict], scored: Iterable[str] = ()) -> list[str]:
    """Branches and the ensemble as the summaries list them, head's order first, then any other
    scored metrics file (before the ensemble); the registry's names when there is none yet.
    Never a list of its own, so a new branch simply appears."""
    names: list[str] = []
    for summary in summaries:
        names += [k for k, v in summary.items() if k != "val" and isinstance(v, int | float) and k not in names]
    extra = [name for name in dict.fromkeys(scored) if name not in names]
    if "ensemble" in names:
        at = names.index("ensemble")
        names[at:at] = [name for name in extra if name != "ensemble"]
    else:
        names += extra
    return names or [*NAMES, "ensemble"]


def read_scores(tree: Tree, names: Iterable[str]) -> dict[tuple[str, str], Score]:
    """(name, split) -> macro ROC-AUC with its interval: metrics/<name>.json, else the summary."""
    summary = read_json(tree, SUMMARY)
    scores = {}
    for name in names:
        metrics = read_json(tree, f"metrics/{name}.json")
        for split in SPLITS:
            found = metrics.get(split)
            block: dict = found if isinstance(found, dict) else {}
            value = block.get("roc_auc_macro")
            if value is None:
                value = summary.get(name) if split == "test" else (summary.get("val") or {}).get(name)
            if not isinstance(value, int | float):
                continue
            ci = block.get("roc_auc_macro_ci95")
            interval = (float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else None
            scores[name, split] = Score(float(value), interval)
    return scores
