"""The reproduced tiny pipeline, shared by the end-to-end modules that run DVC on the project itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.project import dvc, git
from helpers.tiny_pipeline import copy_tiny_pipeline, ran, stage_names


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project copy on 120 generated movies, fully reproduced and committed: built once per test
    process (a whole `dvc repro` is most of an e2e module's time). A test that changes it puts it
    back with ``reset_to_commit``; a module that needs a project of its own copies this one."""
    repo, archive = copy_tiny_pipeline(tmp_path_factory.mktemp("pipeline"))
    first = dvc(repo, "repro")
    assert ran(first.stdout) == set(stage_names(repo))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline run")
    (repo / "archive-path").write_text(str(archive))
    return repo
