"""`moviegenre experiments`: every experiment beside its baseline in one terminal-wide table.

Built on ``dvc exp show --json``: each row is the workspace, a baseline commit or one of its
experiments, with the params it changed from its baseline and every branch's and the
ensemble's test macro ROC-AUC. A branch whose train stage had the same own inputs as the
baseline's (command, dep hashes and params in each revision's dvc.lock) is marked ``=``: the
sweep did not reach it, whatever its AUC did. Judging by the stage's own inputs, not by what
lies upstream, matters because every stage sits below ``check_params``, which reads every
param. Each other AUC that moved is judged by the report's noise rule (``report.noise``)
against the baseline's: the two revisions' 95% bootstrap intervals, read from
``metrics/<branch>.json`` at each revision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moviegenre.cli.report.noise import judge, same_stage_inputs
from moviegenre.cli.report.revisions import RevisionTree, Tree, WorkspaceTree, dvc_json, stage_inputs
from moviegenre.cli.report.scores import Score, branch_names, read_scores
from moviegenre.cli.report.tables import flatten

WIDTH = 120
NAME_WIDTH = 14
VALUE_WIDTH = 7  # "0.6457+"; a column is one wider than its value or its header (two lines, split at "_")
SAME_INPUTS = "="  # the branch's stage had the same own inputs as the baseline's
# the mark of an AUC whose stage's inputs changed: a real gain or loss (+/-), noise, or no interval to judge by
MARKS = {"real": "", "noise": "~", "unjudged": "?", "unchanged": " ", "new": " "}
LEGEND = (
    "test macro ROC-AUC. +/-: real change from the baseline  ~: within the noise  =: same stage inputs  ?: unjudged"
)


@dataclass
class Row:
    """One line of the table: a baseline commit, the workspace or an experiment."""

    name: str
    rev: str
    params: dict[str, Any]
    summary: dict[str, Any]
    state: str
    baseline: Row | None = None
    changed: list[str] = field(default_factory=list)


def rows(root: Path = Path(".")) -> list[Row]:
    """The workspace, each baseline commit and its experiments, as ``dvc exp show`` lists them."""
    out: list[Row] = []
    for base in dvc_json("exp", "show", cwd=root) or []:
        rev = base.get("rev", "")
        head = _row(base, base.get("name") or (rev if rev == "workspace" else rev[:7]))
        out.append(head)
        for experiment in base.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                row = _row(rev, rev.get("name") or rev.get("rev", "")[:7])
                row.baseline = head if head.rev != "workspace" else None
                row.changed = _changed(head.params, row.params)
                out.append(row)
    workspace = next((r for r in out if r.rev == "workspace"), None)
    commit = next((r for r in out if r.rev != "workspace" and r.baseline is None), None)
    if workspace is not None and commit is not None:
        workspace.baseline, workspace.changed = commit, _changed(commit.params, workspace.params)
    return out


def _row(entry: dict[str, Any], name: str) -> Row:
    data = entry.get("data") or {}
    params = flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
    summary = (data.get("metrics") or {}).get("metrics/summary.json", {}).get("data") or {}
    return Row(name, entry.get("rev", ""), params, summary, str(data.get("status") or entry.get("status") or ""))


def _changed(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    return [f"{key}={head.get(key)}" for key in sorted(set(base) | set(head)) if base.get(key) != head.get(key)]


def table(found: list[Row], root: Path = Path(".")) -> str:
    """The rows as text at most ``WIDTH`` wide, marks judged against each row's baseline."""
    names = branch_names(row.summary for row in found)
    labels = [_label(name) for name in names]
    widths = [1 + max(VALUE_WIDTH, len(top), len(rest)) for top, rest in labels]
    changed_width = max(12, WIDTH - NAME_WIDTH - sum(widths) - 1)
    first = f"{'Experiment':<{NAME_WIDTH}} {'changed':<{changed_width}}" + "".join(
        f"{top:>{width}}" for (top, _), width in zip(labels, widths, strict=True)
    )
    second = " " * (NAME_WIDTH + 1 + changed_width) + "".join(
        f"{rest:>{width}}" for (_, rest), width in zip(labels, widths, strict=True)
    )
    lines = [first, second]
    judged = _Judge(root)
    for row in found:
        changed = _cut(", ".join(row.changed), changed_width)
        cells = [f"{_cut(row.name, NAME_WIDTH):<{NAME_WIDTH}}", f"{changed:<{changed_width}}"]
        for name, width in zip(names, widths, strict=True):
            value = row.summary.get(name)
            if not isinstance(value, int | float):
                cells.append(f"{'-':>{width - 1}} ")
                continue
            mark = judged.mark(row, name) if row.baseline is not None else " "
            cells.append(f"{value:>{width - 1}.4f}{mark}")
        lines.append(" ".join(cells[:2]) + "".join(cells[2:]))
    return "\n".join([*lines, LEGEND])


def _label(name: str) -> tuple[str, str]:
    """A branch name as two header lines: ``image_encoder`` is image / encoder, ``fusion`` blank / fusion."""
    top, _, rest = name.partition("_")
    return (top, rest) if rest else ("", name)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class _Judge:
    """The marks of one row against its baseline; each revision's files are read once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees: dict[str, Tree] = {}
        self.inputs: dict[str, dict[str, Any]] = {}

    def tree(self, rev: str) -> Tree:
        if rev not in self.trees:
            self.trees[rev] = WorkspaceTree(self.root) if rev == "workspace" else RevisionTree(self.root, rev)
        return self.trees[rev]

    def stage_inputs(self, rev: str) -> dict[str, Any]:
        if rev not in self.inputs:
            self.inputs[rev] = stage_inputs(self.tree(rev))
        return self.inputs[rev]

    def mark(self, row: Row, name: str) -> str:
        assert row.baseline is not None
        base_value, head_value = row.baseline.summary.get(name), row.summary.get(name)
        if not isinstance(base_value, int | float) or not isinstance(head_value, int | float):
            return " "
        if same_stage_inputs(name, self.stage_inputs(row.baseline.rev), self.stage_inputs(row.rev)):
            return SAME_INPUTS
        base = read_scores(self.tree(row.baseline.rev), [name]).get((name, "test"), Score(float(base_value)))
        head = read_scores(self.tree(row.rev), [name]).get((name, "test"), Score(float(head_value)))
        verdict = judge(base, head, None, None)
        if verdict.kind == "real":
            return "+" if (verdict.delta or 0) > 0 else "-"
        return MARKS.get(verdict.kind, " ")
