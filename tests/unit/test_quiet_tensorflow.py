"""TensorFlow's start-up chatter is dropped from stderr; anything else it writes still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.project import PROJECT_ROOT

from moviegenre.core.quiet_tensorflow import chatter_patterns, keep_lines

CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796191213.791186    2340 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1796191213.791552    2340 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "I0000 00:00:1796191204.029428    2307 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
]
CUINIT = (
    "E0000 00:00:1796191219.805463    2340 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)"
)
REAL = "E0000 00:00:1796191219.805463    2340 some_kernel.cc:10] out of memory allocating 8 GiB"


def test_chatter_goes_and_other_lines_stay_in_order() -> None:
    text = "\n".join([CHATTER[0], REAL, *CHATTER[1:], CUINIT, "Traceback (most recent call last):"]) + "\n"
    assert keep_lines(text, chatter_patterns(gpu_driver=False)) == REAL + "\nTraceback (most recent call last):\n"


def test_a_failed_cuinit_is_kept_where_a_gpu_driver_is_loaded() -> None:
    assert keep_lines(CUINIT + "\n", chatter_patterns(gpu_driver=True)) == CUINIT + "\n"
    assert keep_lines(CUINIT + "\n", chatter_patterns(gpu_driver=False)) == ""


def _fake_tensorflow(root: Path, lines: list[str]) -> Path:
    """A package named tensorflow that writes ``lines`` to descriptor 2 as its C++ core does."""
    package = root / "tensorflow"
    (package / "config").mkdir(parents=True)
    body = "".join(f"os.write(2, {(line + chr(10)).encode()!r})\n" for line in lines)
    (package / "__init__.py").write_text("import os\n" + body + "from tensorflow import config\n")
    probe = f"    os.write(2, {(CUINIT + chr(10)).encode()!r})\n    return []\n"
    (package / "config" / "__init__.py").write_text("import os\ndef list_physical_devices(kind):\n" + probe)
    return root


def _import_in_child(path: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent("""
        import moviegenre, sys
        import tensorflow
        sys.stderr.write("after import\\n")
    """)
    env = {k: v for k, v in os.environ.items() if k != "MOVIEGENRE_TF_LOGS"}
    env |= {"PYTHONPATH": os.pathsep.join([str(path), str(PROJECT_ROOT / "src")]), **env_extra}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_the_first_import_runs_filtered(tmp_path: Path) -> None:
    path = _fake_tensorflow(tmp_path, [*CHATTER, REAL])
    done = _import_in_child(path, {})
    assert done.returncode == 0, done.stderr
    expected_cuinit = CUINIT + "\n" if Path("/proc/driver/nvidia/version").exists() else ""
    assert done.stderr == REAL + "\n" + expected_cuinit + "after import\n"


def test_moviegenre_tf_logs_all_shows_everything(tmp_path: Path) -> None:
    path = _fake_tensorflow(tmp_path, CHATTER)
    done = _import_in_child(path, {"MOVIEGENRE_TF_LOGS": "all"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "\n".join(CHATTER) + "\nafter import\n"  # the cuInit probe only runs under the filter


def test_real_tensorflow_imports_silently() -> None:
    script = "import moviegenre, keras, tensorflow as tf; tf.constant(1.0) + 1; tf.config.list_physical_devices()"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MOVIEGENRE_TF_LOGS")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if not Path("/proc/driver/nvidia/version").exists():
        assert done.stderr == ""
