"""The noise rule: whether a Δ in macro ROC-AUC is a real change or the noise of a few hundred
scored movies (docs/sharing.md "When is a change real?"). Pure: it is given the scores,
whether the stage had the same inputs and the paired interval, and reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moviegenre.cli.report.scores import Score
from moviegenre.evaluation.metrics import BOOTSTRAP_RESAMPLES

# metrics files round AUCs to 6 decimals: a smaller difference is no difference
EPSILON = 5e-7
NOISE_RULE = (
    "**Noise rule.** Δ is **bold** only when it lies outside the noise. With both revisions' "
    f"predictions at hand: a paired bootstrap ({BOOTSTRAP_RESAMPLES:,} resamples of the scored movies, "
    "the same resample for base and head) gives a 95% interval for Δ, and Δ is real when that interval "
    "excludes 0. Otherwise: Δ is real when the two revisions' 95% bootstrap intervals "
    "(`roc_auc_macro_ci95` in `metrics/<branch>.json`) do not overlap. A branch whose stage and every "
    "stage upstream of it ran the same code and params on the same data in both revisions (`dvc.lock`) "
    "moved by the machine alone (a BLAS kernel, thread timing): machine noise, never bold. Where the two "
    "revisions ran on different machines, what differs between them is named once, under the table."
)


@dataclass(frozen=True)
class Verdict:
    """How one Δ compares with the noise: kind is unchanged, real, noise, machine, unjudged,
    new or removed; method says which rule decided."""

    kind: str
    delta: float | None = None
    method: str = ""


def machine_only(name: str, base: dict[str, Any], head: dict[str, Any]) -> str | None:
    """Why a difference in ``name``'s AUC can only come from the machine, or None when it can
    come from a change. It can when the stage that scores ``name`` (train@<name>, or a stage
    called <name>) ran the same code and params in both revisions (``revisions.stage_inputs``),
    and each of its deps either has the same hash in both or was written by stages of which the
    same holds: the same code, params and data upstream. A dep with the same hash ends the
    search there, so ``check_params``, which reads every param but writes the same stamp while
    they are valid, does not make every stage below it count as changed. What the machines
    recorded differently is the report's to say once (``machines``), not each verdict's."""
    stage = _scoring_stage(name, base, head)
    if stage is None or not _same_upstream(stage, base, head):
        return None
    return "same code, params and data upstream (dvc.lock)"


def same_stage_inputs(name: str, base: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether the stage that scores ``name`` ran the same command on the same deps (by hash)
    with the same params in both revisions' dvc.lock: its own inputs, not its ancestry. Within
    one workspace and its experiments DVC reruns a stage only when these change, so equal own
    inputs mean the stage did not rerun, or reran to what the machine alone makes of them."""
    stage = _scoring_stage(name, base, head)
    return stage is not None and all(base[stage].get(k) == head[stage].get(k) for k in ("cmd", "deps", "params"))


def _scoring_stage(name: str, base: dict[str, Any], head: dict[str, Any]) -> str | None:
    """The stage that scores ``name`` in both revisions' dvc.lock, or None."""
    return next((s for s in (f"train@{name}", f"train_{name}", name) if s in base and s in head), None)


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _same_upstream(stage: str, base: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether ``stage`` ran the same command and params in both revisions on deps that are the
    same bytes, or that stages of which this holds wrote (on another machine, other bytes)."""
    seen: set[str] = set()
    todo = [stage]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in base or current not in head:
            return False
        old, new = base[current], head[current]
        if old.get("cmd") != new.get("cmd") or old.get("params") != new.get("params"):
            return False
        old_deps, new_deps = dict(old.get("deps", [])), dict(new.get("deps", []))
        if set(old_deps) != set(new_deps):
            return False
        for path, digest in new_deps.items():
            if old_deps[path] == digest:
                continue
            writers = [
                w
                for w, found in head.items()
                if w != current and any(_overlaps(path, o) for o in found.get("outs", []))
            ]
            if not writers:
                return False
            todo += writers
    return True


def moved(base: Score | None, head: Score | None) -> bool:
    """Whether both revisions have a score and they differ: only then is there a Δ to judge
    (and a paired bootstrap worth its time)."""
    return base is not None and head is not None and abs(head.value - base.value) >= EPSILON


def judge(base: Score | None, head: Score | None, machine: str | None, paired: tuple[float, float] | None) -> Verdict:
    """The noise rule (``NOISE_RULE``) for one branch and split; ``machine``: why only the
    machine can have moved it (``machine_only``), or None."""
    if base is None:
        return Verdict("new")
    if head is None:
        return Verdict("removed")
    delta = head.value - base.value
    if abs(delta) < EPSILON:
        return Verdict("unchanged", 0.0)
    if machine:
        return Verdict("machine", delta, machine)
    if paired is not None:
        low, high = paired
        return Verdict("real" if low > 0 or high < 0 else "noise", delta, "paired bootstrap")
    if base.ci95 and head.ci95:
        overlap = head.ci95[0] <= base.ci95[1] and base.ci95[0] <= head.ci95[1]
        return Verdict("noise" if overlap else "real", delta, "95% intervals")
    return Verdict("unjudged", delta, "no interval")
