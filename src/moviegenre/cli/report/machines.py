"""The machines behind the two revisions, said once under the headline rather than in every cell.

Each stage records its BLAS kernels and the CPU's kernel flags beside its timings
(``core.machine``). Where base and head recorded different ones, the report names only what
differs (a flag one CPU has, a BLAS kernel), and marks the Δs of the branches whose training
follows the CPU's float kernels: between two machines their AUC moves on the same inputs, and a
reviewer should read a small move as that.

Those are the Keras branches: TensorFlow's kernels (oneDNN) are chosen by the CPU's instruction
set and sum in their own order, while the forests and scikit-learn fits give the same bytes on
every CPU. The report asks each branch's class whether it is a ``KerasBranch`` rather than
keeping a list, so a new Keras branch is marked without a change here; a flag on the branch
classes would do the same, but every train stage depends on their code, and editing it would
make every branch retrain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from moviegenre.branches.keras.branch import KerasBranch
from moviegenre.branches.registry import NAMES, branch_class
from moviegenre.cli.report.markdown import WIDTH, paragraph
from moviegenre.cli.report.revisions import TIMINGS, Tree, read_json
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

CPU_MARK = "†"
CPU_NOTE = (
    f"{CPU_MARK} trained with CPU-dependent float kernels: on another machine the same code, params and data "
    "train to other last bits, so a move within the noise between these machines is expected."
)


@dataclass(frozen=True)
class Machine:
    """What one stage recorded of its machine: BLAS libraries with their kernels, CPU kernel flags."""

    blas: tuple[str, ...]
    cpu_flags: tuple[str, ...]


def recorded_machine(tree: Tree, stage: str) -> Machine | None:
    """What ``metrics/timings/<stage>.json`` recorded of the machine, or None where it recorded
    nothing (an older revision): then nothing is said about it."""
    found = read_json(tree, f"{TIMINGS}/{stage}.json").get("machine")
    if not isinstance(found, dict):
        return None
    blas, flags = found.get("blas"), found.get("cpu_flags")
    return Machine(
        tuple(map(str, blas)) if isinstance(blas, list) else (),
        tuple(map(str, flags)) if isinstance(flags, list) else (),
    )


def difference(base: Machine, head: Machine) -> str:
    """What differs between two machines, in words: the CPU flags one has and the other lacks,
    then the BLAS kernels that changed; what they share is left out."""
    parts = []
    for flags, side in (([f for f in head.cpu_flags if f not in base.cpu_flags], "head"),
                        ([f for f in base.cpu_flags if f not in head.cpu_flags], "base")):  # fmt: skip
        if flags:
            parts.append(f"CPU flags {', '.join(flags)} in {side} only")
    gone, came = [b for b in base.blas if b not in head.blas], [b for b in head.blas if b not in base.blas]
    if gone or came:
        parts.append(f"BLAS {', '.join(gone) or 'none recorded'} → {', '.join(came) or 'none recorded'}")
    return "; ".join(parts)


def machine_differences(base: Tree, head: Tree) -> dict[str, str]:
    """Each stage whose timings file recorded another machine in base than in head -> what differs."""
    found = {}
    for file in sorted(set(base.names(TIMINGS)) & set(head.names(TIMINGS))):
        if not file.endswith(".json"):
            continue
        stage = file.removesuffix(".json")
        old, new = recorded_machine(base, stage), recorded_machine(head, stage)
        text = difference(old, new) if old and new else ""
        if text:
            found[stage] = text
    return found


def cpu_dependent(names: Iterable[str]) -> set[str]:
    """The branches among ``names`` that train with CPU-dependent float kernels (a ``KerasBranch``);
    a name the registry does not know (a removed branch, the ensemble) is not one."""
    found = set()
    for name in names:
        if name not in NAMES:
            continue
        try:
            if issubclass(branch_class(name), KerasBranch):
                found.add(name)
        except (ImportError, MovieGenreError) as exc:  # a broken entry: the report goes on without the mark
            log.info("%s: not known whether it trains the same on every CPU (%s)", name, exc)
    return found


def machine_notes(differences: dict[str, str], marked: bool, width: int = WIDTH) -> list[str]:
    """The lines under the headline: what differs between the machines, once (by stage only
    where stages differ differently), and what the mark on a CPU-dependent branch's Δ means;
    wrapped, since a Markdown paragraph reads the same on one line or several."""
    if not differences:
        return []
    groups: dict[str, list[str]] = {}
    for stage, text in differences.items():
        groups.setdefault(text, []).append(stage)
    lead = "**Machines.** Base and head ran on different machines (as recorded in `metrics/timings/<stage>.json`)"
    if len(groups) == 1:
        lines = paragraph(f"{lead}: {next(iter(groups))}.", width)
    else:
        lines = paragraph(f"{lead}, by stage:", width)
        for text, stages in groups.items():
            lines += paragraph(f"- {', '.join(stages)}: {text}", width, indent="  ")
    return [*lines, *(["", *paragraph(CPU_NOTE, width)] if marked else [])]
