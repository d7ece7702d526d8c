"""The whole report: read both revisions, judge each Δ, write the Markdown in the order a
reviewer reads it (headline, params, folded details, figures)."""

from __future__ import annotations

from pathlib import Path

from moviegenre.cli.report.figures import figure_table
from moviegenre.cli.report.machines import CPU_MARK, cpu_dependent, machine_differences, machine_notes
from moviegenre.cli.report.markdown import details, paragraph
from moviegenre.cli.report.noise import NOISE_RULE, Verdict, judge, machine_only, moved
from moviegenre.cli.report.pairing import paired_intervals
from moviegenre.cli.report.revisions import (
    PREPARED,
    SUMMARY,
    DirectoryTree,
    RevisionTree,
    Tree,
    WorkspaceTree,
    dvc_json,
    read_json,
    resolve_revision,
    stage_inputs,
)
from moviegenre.cli.report.scores import SPLITS, branch_names, read_scores, scored_names
from moviegenre.cli.report.tables import (
    count_rows,
    headline,
    metrics_diff_rows,
    noise_rows,
    params_table,
    timing_rows,
)


def build_report(
    base: str,
    cwd: Path = Path("."),
    out: Path | None = None,
    figures: bool = True,
    paired: bool = True,
    base_predictions: Path | None = None,
) -> str:
    """The whole report for ``base`` -> the workspace at ``cwd``; figures are linked relative to
    ``out`` (base figures written beside it), or to the current directory when printing."""
    short = resolve_revision(cwd, base)
    head_tree: Tree = WorkspaceTree(cwd)
    base_tree: Tree = RevisionTree(cwd, base)
    base_summary, head_summary = read_json(base_tree, SUMMARY), read_json(head_tree, SUMMARY)
    names = branch_names([head_summary, base_summary], [*scored_names(head_tree), *scored_names(base_tree)])
    base_scores, head_scores = read_scores(base_tree, names), read_scores(head_tree, names)

    base_inputs, head_inputs = stage_inputs(base_tree), stage_inputs(head_tree)
    machine = {name: machine_only(name, base_inputs, head_inputs) for name in names}
    differences = machine_differences(base_tree, head_tree)  # stage -> what differs between its two machines
    marked = cpu_dependent(name for name in names if name in differences)
    pairs: dict[tuple[str, str], tuple[float, float]] = {}
    if paired:  # only where a Δ needs judging: the bootstrap is the report's one slow part
        wanted = {
            (name, split)
            for name in names
            for split in SPLITS
            if not machine[name] and moved(base_scores.get((name, split)), head_scores.get((name, split)))
        }
        source = DirectoryTree(base_predictions) if base_predictions else base_tree
        pairs = paired_intervals(wanted, head_tree, source, cwd / PREPARED)
    verdicts: dict[tuple[str, str], Verdict] = {}
    for name in names:
        for split in SPLITS:
            old, new = base_scores.get((name, split)), head_scores.get((name, split))
            if old or new:
                verdicts[name, split] = judge(old, new, machine[name], pairs.get((name, split)))

    params = dvc_json("params", "diff", base, "--all", cwd=cwd)
    params = {f: {k: v for k, v in p.items() if v.get("old") != v.get("new")} for f, p in params.items()}
    metrics = dvc_json("metrics", "diff", base, "--all", cwd=cwd)

    base_label = f"`{base}`" + (f" ({short})" if short != base else "")
    lines = [f"## moviegenre: {base_label} → this change", "", "### Macro ROC-AUC by branch", ""]
    table = headline(names, base_scores, head_scores, verdicts, marked)
    notes = machine_notes(differences, any(CPU_MARK in line for line in table))
    lines += [*table, "", *([*notes, ""] if notes else []), *paragraph(NOISE_RULE)]
    lines += ["", "### Params changed", "", *params_table(params), ""]
    lines += details(
        "Noise bands: the 95% intervals behind each verdict",
        "| branch | split | base 95% interval | head 95% interval | paired Δ 95% interval |",
        noise_rows(names, base_scores, head_scores, pairs),
    )
    lines += details(
        "Timings (they move every run)", "| stage | key | base | this change |", timing_rows(base_tree, head_tree)
    )
    lines += details(
        "Counts and other metrics", "| file | key | base | this change |", count_rows(base_tree, head_tree, names)
    )
    lines += details(
        "Every metric DVC compares (`dvc metrics diff`)",
        "| file | metric | base | this change | Δ |",
        metrics_diff_rows(metrics),
    )
    if figures:
        side_by_side = figure_table(base_tree, head_tree, cwd, out, base_label)
        if side_by_side:
            lines += ["### Figures", "", *side_by_side, ""]
    return "\n".join(lines).rstrip("\n") + "\n"
