"""The reproduced tiny pipeline, shared by the end-to-end modules that run DVC on the project itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.once_per_run import built_once
from helpers.project import dvc, git
from helpers.tiny_pipeline import copy_tiny_pipeline, ran, stage_names


def _reproduce(root: Path) -> None:
    """``root/repo``: the tiny pipeline reproduced and committed, its archive's path in ``archive-path``."""
    repo, archive = copy_tiny_pipeline(root)
    first = dvc(repo, "repro")
    assert ran(first.stdout) == set(stage_names(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline run")
    (repo / "archive-path").write_text(str(archive))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy on 120 generated movies, fully reproduced and committed. A whole `dvc repro`
    is most of an e2e module's time, so it runs once per pytest run (``built_once``) and every test
    process works on a copy of its own, its DVC cache and run history included. A test that
    changes the copy puts it back with ``reset_to_commit``; a module that needs a project of its
    own copies this one."""
    built = built_once(tmp_path_factory, "tiny-pipeline", _reproduce)
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    shutil.copytree(built / "repo", repo, symlinks=True)
    return repo
