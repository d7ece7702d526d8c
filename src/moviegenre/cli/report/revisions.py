"""The files of one revision, read the same way whether it is the workspace (head), a git
revision through DVC (base) or a folder of base predictions, so that nothing downstream knows
which; plus the two things only git and DVC can answer: a revision's commit and DVC's diffs.

Anything unreadable at a revision is absent, not an error: a report with a missing piece is
more use to a reviewer than no report.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import yaml

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

# where the pipeline writes what the report reads, project-relative
SUMMARY = "metrics/summary.json"
COUNTS = "metrics/data.json"
TIMINGS = "metrics/timings"
PREDICTIONS = "data/predictions"
ENSEMBLE_PREDICTIONS = "data/ensemble/predictions.parquet"
PREPARED = "data/prepared"
FIGURES = "plots"


class Tree(Protocol):
    """The files of one revision, by project-relative posix path."""

    def read(self, path: str) -> bytes | None: ...

    def names(self, folder: str) -> list[str]: ...


class WorkspaceTree:
    """The working tree: head is what the pipeline just produced, committed or not."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, path: str) -> bytes | None:
        target = self.root / path
        return target.read_bytes() if target.is_file() else None

    def names(self, folder: str) -> list[str]:
        directory = self.root / folder
        return sorted(p.name for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


class RevisionTree:
    """A git revision through DVC's file system: git-tracked files from git, DVC outputs from the
    cache or the default remote; anything unreadable is simply absent (logged, not fatal)."""

    def __init__(self, root: Path, rev: str) -> None:
        from dvc.api import DVCFileSystem  # slow to import: only when a report is built

        self.rev = rev
        self.fs = DVCFileSystem(str(root), rev=rev)

    def read(self, path: str) -> bytes | None:
        try:
            return self.fs.read_bytes(path)
        except FileNotFoundError:
            return None
        except Exception as exc:  # a missing cache object, an unreachable remote: report without it
            log.info("%s at %s: not readable (%s)", path, self.rev, exc)
            return None

    def names(self, folder: str) -> list[str]:
        try:
            entries = self.fs.ls(folder, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(Path(e["name"]).name for e in entries if e.get("type") == "file")


class DirectoryTree(WorkspaceTree):
    """A folder of the base's predictions given with --base-predictions (``<branch>.parquet``):
    any project path is looked up by its file name alone."""

    def read(self, path: str) -> bytes | None:
        return super().read(Path(path).name)


def resolve_revision(root: Path, rev: str) -> str:
    """The short commit of ``rev``, or a one-line error naming it."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise MovieGenreError(f"--base {rev}: not a git revision here")
    return done.stdout.strip()


def read_json(tree: Tree, path: str) -> dict:
    """A JSON object at ``path``; {} when it is absent, not JSON or not an object, so that one
    broken metrics file leaves a gap in the report rather than no report."""
    raw = tree.read(path)
    if raw is None:
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        log.warning("%s: not JSON, left out of the report", path)
        return {}
    return payload if isinstance(payload, dict) else {}


def dvc_json(*args: str, cwd: Path = Path(".")) -> dict:
    """``dvc <args> --json`` run in ``cwd`` (params and metrics diffs), or a one-line error with
    DVC's last line: DVC's own diff is the reference a reviewer can rerun."""
    done = subprocess.run([sys.executable, "-m", "dvc", *args, "--json"], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise MovieGenreError(f"dvc {' '.join(args)} failed: {message[-1] if message else done.returncode}")
    return json.loads(done.stdout or "{}")


def stage_inputs(tree: Tree) -> dict[str, Any]:
    """Each stage's command, deps (path and hash), params and out paths from dvc.lock: what it
    ran on, and what it wrote (so that a dep can be traced to the stage that wrote it)."""
    raw = tree.read("dvc.lock")
    try:
        stages = (yaml.safe_load(raw) or {}).get("stages", {}) if raw else {}
    except yaml.YAMLError:
        log.warning("dvc.lock: not YAML, so no stage counts as rerun on the same inputs")
        stages = {}
    return {
        name: {
            "cmd": stage.get("cmd"),
            "deps": sorted((d.get("path"), d.get("md5") or d.get("hash")) for d in stage.get("deps", [])),
            "params": stage.get("params", {}),
            "outs": [o.get("path", "") for o in stage.get("outs", [])],
        }
        for name, stage in stages.items()
    }
