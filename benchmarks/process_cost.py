"""What one command costs: wall time, CPU time and peak memory, for every benchmark here.

The figures come from the child's own rusage (``os.wait4``), not from sampling, so a short
process is measured as exactly as a long one; CPU time covers the process and the children it
waited for, peak RSS is its largest process's.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run ``args`` in ``cwd``; wall s, CPU s and peak RSS MiB, or exit naming the command and its output's end."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child cannot fill it and block
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{log.read().decode(errors='replace')[-3000:]}")
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }
