"""The report's tables: the headline (AUC by branch, judged), the intervals behind each verdict,
and the folded comparisons of timings, counts, params and every metric DVC compares."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from moviegenre.cli.report.machines import CPU_MARK
from moviegenre.cli.report.markdown import delta_cell, fmt, fmt_auc, fmt_delta
from moviegenre.cli.report.noise import Verdict
from moviegenre.cli.report.revisions import COUNTS, TIMINGS, Tree, read_json
from moviegenre.cli.report.scores import SPLITS, Score

MOVED = ("real", "noise", "machine", "unjudged")  # the verdicts that show a Δ


def headline(
    names: list[str],
    base: dict[tuple[str, str], Score],
    head: dict[tuple[str, str], Score],
    verdicts: dict[tuple[str, str], Verdict],
    marked: Collection[str] = (),
) -> list[str]:
    """One row per branch with a verdict: val and test, base → head, Δ, and the rule that judged;
    each Δ of a ``marked`` branch (trained with CPU-dependent kernels, on two machines) carries
    ``CPU_MARK``, which the note under the table explains."""
    lines = [
        "| branch | val: base → head | Δ val | test: base → head | Δ test | judged by |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        if not any((name, s) in verdicts for s in SPLITS):
            continue
        cells = []
        for split in SPLITS:
            old, new = base.get((name, split)), head.get((name, split))
            cells.append(f"{fmt_auc(old.value if old else None)} → {fmt_auc(new.value if new else None)}")
            verdict = verdicts.get((name, split), Verdict("unchanged", 0.0))
            mark = f" {CPU_MARK}" if name in marked and verdict.kind in MOVED else ""
            cells.append(delta_cell(verdict) + mark)
        methods = sorted({verdicts[name, s].method for s in SPLITS if (name, s) in verdicts} - {""})
        lines.append(f"| {name} | {' | '.join(cells)} | {', '.join(methods) or '—'} |")
    return lines


def noise_rows(
    names: list[str],
    base: dict[tuple[str, str], Score],
    head: dict[tuple[str, str], Score],
    paired: dict[tuple[str, str], tuple[float, float]],
) -> list[tuple[str, ...]]:
    """The intervals behind each verdict, for a reviewer who wants to check one."""

    def interval(score: Score | None) -> str:
        return f"[{score.ci95[0]:.4f}, {score.ci95[1]:.4f}]" if score and score.ci95 else "—"

    rows: list[tuple[str, ...]] = []
    for name in names:
        for split in SPLITS:
            if (name, split) not in base and (name, split) not in head:
                continue
            pair = paired.get((name, split))
            pair_text = f"[{fmt_delta(pair[0])}, {fmt_delta(pair[1])}]" if pair else "—"
            rows.append((name, split, interval(base.get((name, split))), interval(head.get((name, split))), pair_text))
    return rows


def flatten(payload: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to scalar leaves; a list of scalars stays one value."""
    if isinstance(payload, dict):
        flat: dict[str, Any] = {}
        for key, value in payload.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(payload, list):
        return (
            {prefix[:-1]: ", ".join(fmt(v) for v in payload)}
            if all(not isinstance(v, dict | list) for v in payload)
            else {}
        )
    return {prefix[:-1]: payload}


def comparison_rows(base: dict, head: dict, only_changed: bool) -> list[tuple[str, Any, Any]]:
    """(key, base, head) for each flattened key, head's order first, then keys only base has."""
    old, new = flatten(base), flatten(head)
    keys = list(new) + [k for k in old if k not in new]
    return [(k, old.get(k), new.get(k)) for k in keys if not only_changed or old.get(k) != new.get(k)]


def timing_rows(base: Tree, head: Tree) -> list[tuple[str, ...]]:
    """Every timing of both revisions, changed or not: they move every run, so all are shown. The
    machine each stage recorded beside them is left out: the note under the headline names what
    differs, once."""
    rows: list[tuple[str, ...]] = []
    for file in sorted(set(head.names(TIMINGS)) | set(base.names(TIMINGS))):
        if not file.endswith(".json"):
            continue
        path = f"{TIMINGS}/{file}"
        for key, old, new in comparison_rows(read_json(base, path), read_json(head, path), only_changed=False):
            if not key.startswith("machine."):
                rows.append((file[:-5], key, fmt(old), fmt(new)))
    return rows


def count_rows(base: Tree, head: Tree, names: list[str]) -> list[tuple[str, ...]]:
    """metrics/data.json whole, and each branch's other metrics (micro AUC, counts, epochs...)
    where they changed."""
    rows: list[tuple[str, ...]] = [
        ("data", k, fmt(o), fmt(n))
        for k, o, n in comparison_rows(read_json(base, COUNTS), read_json(head, COUNTS), False)
    ]
    for name in names:
        path = f"metrics/{name}.json"
        for key, old, new in comparison_rows(read_json(base, path), read_json(head, path), only_changed=True):
            if not key.endswith(("roc_auc_macro", "roc_auc_macro_ci95")):
                rows.append((name, key, fmt(old), fmt(new)))
    return rows


def params_table(diff: dict) -> list[str]:
    """The params that changed (``dvc params diff`` with the unchanged ones dropped)."""
    rows = [(name, change) for params in diff.values() for name, change in sorted(params.items())]
    if not rows:
        return ["No parameter changed."]
    lines = ["| param | base | this change |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {fmt(c.get('old'))} | {fmt(c.get('new'))} |" for name, c in rows]
    return lines


def metrics_diff_rows(diff: dict) -> list[tuple[str, ...]]:
    """The metrics ``dvc metrics diff`` shows as changed, added or removed."""
    rows: list[tuple[str, ...]] = []
    for path, metrics in sorted(diff.items()):
        for name, change in sorted(metrics.items()):
            delta = change.get("diff")
            if delta not in (0, None) or change.get("old") is None or change.get("new") is None:
                text = fmt_delta(delta) if isinstance(delta, float) else fmt(delta)
                rows.append((path, name, fmt(change.get("old")), fmt(change.get("new")), text))
    return rows
