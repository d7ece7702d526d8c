"""`predict --dataset` fetches within bounds and leaves nothing behind when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from helpers.slow_http import trickle


def test_sigterm_while_fetching_removes_every_temporary_and_writes_nothing(http_server, tmp_path: Path) -> None:
    url = http_server(trickle)
    source = tmp_path / "new"
    source.mkdir()
    pd.DataFrame({"id": ["n1"], "title": ["One"], "year": [""], "plot": ["a plot"], "genres": [""],
                  "poster": [f"{url}/slow.jpg"]}).to_csv(source / "movies.csv", index=False)  # fmt: skip
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    env = os.environ | {"TMPDIR": str(temporaries)}
    command = [sys.executable, "-m", "moviegenre.cli", "predict", "--dataset", str(source), "--out", "p.csv"]
    child = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(temporaries.rglob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the poster download is under way
    assert any(temporaries.rglob("*.part")), "the poster download never started"
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert child.returncode == 143
    assert stderr.strip().splitlines()[-1] == "error: stopped by signal SIGTERM; nothing was written"
    assert list(temporaries.iterdir()) == [] and not (tmp_path / "p.csv").exists()
