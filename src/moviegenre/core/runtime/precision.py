"""The arithmetic a pretrained encoder runs in, chosen once per machine and then recorded.

Both encoders (plots and posters) take ``precision: auto``; what it resolves to is written into
their ``encoder.json``, so prediction on another machine computes as the stage did.
"""

from __future__ import annotations

from pathlib import Path


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, and slow."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(setting: str) -> str:
    """``auto`` is mixed_bfloat16 on a CPU with bf16 instructions (and no GPU in use), else float32.

    The resolved value is what encoder.json records, so prediction uses the same arithmetic
    as the stage did, whatever machine it runs on.
    """
    if setting != "auto":
        return setting
    import tensorflow as tf

    if tf.config.get_visible_devices("GPU"):
        return "float32"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"
