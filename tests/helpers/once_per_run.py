"""What the test processes of one pytest run build once and share, whichever process asks first."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """``<the run's temporary directory>/<name>``, made by ``build`` (handed the empty folder) under a
    file lock, unless a process of this run made it already. pytest-xdist gives each process a base
    temporary directory of its own inside the run's, which is where the lock and the build live; a
    run without xdist builds in its own base."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    built, done = shared / name, shared / f"{name}.done"
    with FileLock(shared / f"{name}.lock"):
        if not done.is_file():
            shutil.rmtree(built, ignore_errors=True)  # a process whose build failed left a part
            built.mkdir()
            build(built)
            done.touch()
    return built
