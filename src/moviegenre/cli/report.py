"""A Markdown report of what a change did: params and metrics against a base revision.

Built on `dvc params diff` and `dvc metrics diff` (JSON), so it shows exactly what DVC
compares; CI posts it as a pull-request comment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from moviegenre.branches.registry import NAMES
from moviegenre.core.errors import MovieGenreError

BRANCH_ORDER = (*NAMES, "ensemble")
FIGURES = ("plots/macro_auc.png", "plots/per_genre_auc.png")


def dvc_json(*args: str, cwd: Path = Path(".")) -> dict:
    done = subprocess.run([sys.executable, "-m", "dvc", *args, "--json"], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise MovieGenreError(f"dvc {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return json.loads(done.stdout or "{}")


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def params_table(diff: dict) -> list[str]:
    rows = [(name, change) for params in diff.values() for name, change in sorted(params.items())]
    if not rows:
        return ["No parameter changed."]
    lines = ["| param | base | this change |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {_fmt(c.get('old'))} | {_fmt(c.get('new'))} |" for name, c in rows]
    return lines


def metrics_table(diff: dict) -> list[str]:
    rows = []
    for path, metrics in sorted(diff.items()):
        for name, change in sorted(metrics.items()):
            if change.get("diff") not in (0, None) or change.get("old") is None or change.get("new") is None:
                rows.append((path, name, change))
    if not rows:
        return ["No metric changed."]
    lines = ["| file | metric | base | this change | change |", "|---|---|---:|---:|---:|"]
    for path, name, change in rows:
        delta = change.get("diff")
        delta_text = f"{delta:+.4f}" if isinstance(delta, float) else _fmt(delta)
        lines.append(f"| {path} | {name} | {_fmt(change.get('old'))} | {_fmt(change.get('new'))} | {delta_text} |")
    return lines


def macro_table(diff: dict, current: dict) -> list[str]:
    """Test macro ROC-AUC of each branch before and after, whether or not it moved."""
    lines = ["| branch | base | this change | change |", "|---|---:|---:|---:|"]
    path = "metrics/summary.json"  # branch -> test macro ROC-AUC (ensemble stage)
    for branch in BRANCH_ORDER:
        change = diff.get(path, {}).get(branch)
        now = current.get(path, {}).get("data", {}).get(branch)
        if change is None and now is None:
            continue
        old, new = (change["old"], change["new"]) if change else (now, now)
        delta = new - old if isinstance(new, float) and isinstance(old, float) else None
        marker = f" **{delta:+.4f}**" if delta else " 0"
        lines.append(f"| {branch} | {_fmt(old)} | {_fmt(new)} |{marker if delta is not None else ' —'} |")
    return lines


def build_report(base: str, cwd: Path = Path(".")) -> str:
    params = dvc_json("params", "diff", base, "--all", cwd=cwd)
    params = {f: {k: v for k, v in p.items() if v.get("old") != v.get("new")} for f, p in params.items()}
    metrics = dvc_json("metrics", "diff", base, "--all", cwd=cwd)
    shown = dvc_json("metrics", "show", cwd=cwd)
    current = next(iter(shown.values()), {}).get("data", {}) if shown else {}
    lines = [f"## moviegenre: metrics against `{base}`", "", "### Test macro ROC-AUC by branch", ""]
    lines += macro_table(metrics, current)
    lines += ["", "### Params changed", "", *params_table(params)]
    lines += ["", "### Metrics changed", "", *metrics_table(metrics)]
    figures = [f for f in FIGURES if (cwd / f).is_file()]
    if figures:
        lines += ["", "### Figures (this change)", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
