"""Faults for a real Dask worker, loaded with ``dask worker --preload tests/helpers/dask_faults.py``.

It wraps ``moviegenre.cluster.worker.run_shard`` in the worker (tasks name it, and the worker
looks it up when one arrives), so the project carries no fault-injection code of its own. The
folder ``MOVIEGENRE_FAULTS`` names switches faults on with files a test writes there:

- ``kill-after-first-shard``: a worker about to start its second shard since the file appeared
  SIGKILLs itself, once across the cluster (the first to create ``killed`` does);
- ``kill-shard-<index>``: a worker about to start shard ``<index>`` SIGKILLs itself, every time.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from moviegenre.cluster import worker

FOLDER = Path(os.environ["MOVIEGENRE_FAULTS"])
# Dask may import a preload file more than once in a worker: wrap the real function, never a wrapper
_run_shard = getattr(worker.run_shard, "wrapped", worker.run_shard)
_started_since_fault = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run_shard(plugin: str, function: Any, shard: Any) -> Any:
    global _started_since_fault
    if (FOLDER / f"kill-shard-{shard.index}").exists():
        _die()
    if (FOLDER / "kill-after-first-shard").exists():
        _started_since_fault += 1
        if _started_since_fault == 2:
            try:
                os.close(os.open(FOLDER / "killed", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                _die()
    return _run_shard(plugin, function, shard)


run_shard.wrapped = _run_shard  # type: ignore[attr-defined]
worker.run_shard = run_shard
