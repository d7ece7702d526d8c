"""The stages of a project's dvc.yaml as DVC resolves them (``train@<branch>`` expanded), in file order."""

from __future__ import annotations

from pathlib import Path


def resolved_stages(root: Path) -> dict[str, dict]:
    """Stage name -> ``{"cmd": str, "deps": [paths], "outs": [paths]}``; ``root`` need not be a DVC repo."""
    from dvc.repo import Repo

    with Repo(str(root), uninitialized=True) as repo:
        return {
            stage.name: {
                "cmd": stage.cmd,
                "deps": [str(dep.def_path) for dep in stage.deps if not hasattr(dep, "params")],
                "outs": [str(out.def_path) for out in stage.outs],
            }
            for stage in repo.index.stages
        }
