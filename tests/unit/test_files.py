"""Atomic writes: modes as open/mkdir would give them, a replaced file's mode kept, leftovers swept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from moviegenre.core.files import atomic_dir, atomic_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_outputs_are_0644_files_in_0755_folders(tmp_path: Path, umask_022: None) -> None:
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("a")
    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "out") == 0o755 and _mode(tmp_path / "metrics.json") == 0o644


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "preds.csv"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_failed_write_leaves_the_old_output_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("last good")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "keep.txt").read_text() == "last good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_temporaries_of_a_killed_run_are_swept_by_the_next_write(tmp_path: Path) -> None:
    stale_dir = tmp_path / ".out.abc123.tmp"
    (stale_dir / "files").mkdir(parents=True)
    stale_file = tmp_path / ".metrics.json.xyz.tmp"
    stale_file.write_text("partial")
    other = tmp_path / ".other.q.tmp"  # another target's temporary is not ours to remove
    other.write_text("x")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("a")
    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
    assert not stale_dir.exists() and not stale_file.exists() and other.exists()
