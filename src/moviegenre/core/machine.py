"""What of the machine a stage's bytes can depend on, recorded beside its timings.

BLAS libraries choose a kernel per CPU (OpenBLAS: by its own detection, or as
``OPENBLAS_CORETYPE`` says), and kernels sum in different orders: the last bits of a matrix
product, and everything trained from it, follow the kernel. TensorFlow's oneDNN does the same
by instruction set (AVX-512, its bfloat16 extension, AMX). Stages record both in
``metrics/timings/<stage>.json`` (``machine()``) so that ``moviegenre report`` can name what
differed when two revisions with the same code, params and data disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the instruction-set extensions that decide which matrix kernels oneDNN and BLAS run
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
CPUINFO = Path("/proc/cpuinfo")


def blas_kernels() -> list[str]:
    """Each BLAS loaded in this process as "<library> <version> <kernel>" (threadpoolctl's view)."""
    import numpy  # noqa: F401  (its BLAS, at least, is then loaded and seen)
    from threadpoolctl import threadpool_info

    found = {
        f"{info.get('internal_api')} {info.get('version')} {info.get('architecture') or 'unknown'}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    }
    return sorted(found)


def cpu_kernel_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """Which of ``KERNEL_FLAGS`` the CPU has (Linux; empty where /proc/cpuinfo is not)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    return [flag for flag in KERNEL_FLAGS if flag in flags]


def machine() -> dict[str, Any]:
    """What a stage records of the machine beside its timings."""
    return {"blas": blas_kernels(), "cpu_flags": cpu_kernel_flags()}
