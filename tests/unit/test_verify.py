"""`moviegenre verify` finds what `dvc status` trusts: bytes changed under an unchanged size and mtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from moviegenre.cli.verify import verify

STAGE = """stages:
  make:
    cmd: python make.py
    deps:
      - make.py
    outs:
      - out
      - single.txt
"""
MAKE = """import pathlib
out = pathlib.Path("out")
out.mkdir(exist_ok=True)
(out / "a.bin").write_bytes(bytes(range(256)) * 40)
(out / "b.txt").write_text("b")
pathlib.Path("single.txt").write_text("one")
(out / "run.log").write_text("scratch that .dvcignore leaves out of the output's hash")
"""


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_a_damaged_cache_object_passes_dvc_status_but_not_verify(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(STAGE)
    (repo / "make.py").write_text(MAKE)
    _run(repo, "dvc", "init", "--no-scm", "-q")
    (repo / ".dvcignore").write_text("*.log\n")
    _run(repo, "dvc", "repro", "-q")
    assert verify(repo) == (2, [])  # out/run.log is ignored by both, as the repository's .dvcignore says

    damaged = repo / "out" / "a.bin"  # bytes damaged on disk, its size and mtime unchanged (bit rot)
    stat = damaged.stat()
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    os.utime(damaged, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "up to date" in _run(repo, "dvc", "status").stdout  # DVC trusts its state database

    checked, differences = verify(repo)
    assert checked == 2
    assert [d.line() for d in differences] == [
        "out/a.bin: differs from dvc.lock (stage make: `dvc repro --force -s make`)"
    ]
    (repo / "single.txt").write_text("two")
    (repo / "out" / "extra").write_text("x")
    (repo / "out" / "b.txt").unlink()
    problems = {(d.path, d.problem) for d in verify(repo)[1]}
    assert problems == {("out/a.bin", "differs from dvc.lock"), ("out/b.txt", "missing"),
                        ("out/extra", "not in dvc.lock"), ("single.txt", "differs from dvc.lock")}  # fmt: skip
