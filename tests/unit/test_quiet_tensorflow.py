"""TensorFlow's start-up chatter is dropped from stderr; anything else it writes still shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.project import PROJECT_ROOT

from moviegenre.core.runtime.quiet_tensorflow import chatter_patterns, keep_lines

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


def _run_child(path: Path, script: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter whose ``tensorflow`` is the package under ``path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MOVIEGENRE_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    env |= {"PYTHONPATH": os.pathsep.join([str(path), str(PROJECT_ROOT / "src")]), **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


FILTERED_IMPORT = """
    import os, sys
    from moviegenre.core.runtime import quiet_tensorflow
    before = list(sys.meta_path)
    with quiet_tensorflow.first_import_filtered():
        import tensorflow
    assert sys.meta_path == before, sys.meta_path
    sys.stderr.write("after import\\n")
    print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
"""


def _expected_cuinit() -> str:
    return CUINIT + "\n" if Path("/proc/driver/nvidia/version").exists() else ""


def test_the_first_import_runs_filtered(tmp_path: Path) -> None:
    done = _run_child(_fake_tensorflow(tmp_path, [*CHATTER, REAL]), FILTERED_IMPORT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == REAL + "\n" + _expected_cuinit() + "after import\n"
    assert done.stdout.strip() in ("2", "3")  # the level TensorFlow reads once it is loaded


def test_moviegenre_tf_logs_all_shows_everything(tmp_path: Path) -> None:
    done = _run_child(_fake_tensorflow(tmp_path, CHATTER), FILTERED_IMPORT, {"MOVIEGENRE_TF_LOGS": "all"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "\n".join(CHATTER) + "\nafter import\n"  # the cuInit probe only runs under the filter
    assert done.stdout.strip() == "None"


def test_importing_moviegenre_changes_nothing_in_the_process(tmp_path: Path) -> None:
    """No import hook and no environment variable from ``import moviegenre``: a program that uses
    the package and imports TensorFlow itself gets TensorFlow's own output, unfiltered."""
    script = """
        import os, sys
        before, environ = list(sys.meta_path), dict(os.environ)
        import moviegenre, moviegenre.cli.app, moviegenre.predict.predictor, moviegenre.core.stage
        assert sys.meta_path == before, sys.meta_path
        assert dict(os.environ) == environ, set(os.environ.items()) ^ set(environ.items())
        import tensorflow
        sys.stderr.write("after import\\n")
    """
    done = _run_child(_fake_tensorflow(tmp_path, [*CHATTER, REAL]), script)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "\n".join([*CHATTER, REAL]) + "\nafter import\n"


def test_a_stage_imports_tensorflow_filtered_and_leaves_no_hook(tmp_path: Path) -> None:
    script = """
        import sys
        before = list(sys.meta_path)
        from moviegenre.core import stage
        def main():
            import tensorflow
        stage.run(main)
        assert sys.meta_path == before, sys.meta_path
        sys.stderr.write("after the stage\\n")
    """
    done = _run_child(_fake_tensorflow(tmp_path, [*CHATTER, REAL]), script)
    assert done.returncode == 0, done.stderr
    assert done.stderr == REAL + "\n" + _expected_cuinit() + "after the stage\n"


def test_the_hook_lasts_while_any_block_runs_and_a_block_without_tensorflow_leaves_nothing(tmp_path: Path) -> None:
    """Blocks nest and overlap (a Predictor loads featurizers in threads): the hook stays until
    the last one ends; one that imported nothing takes the log level back too."""
    script = """
        import os, sys, threading
        from moviegenre.core.runtime.quiet_tensorflow import first_import_filtered
        before = list(sys.meta_path)
        inner_done, outer_may_end = threading.Event(), threading.Event()
        def other_thread():
            with first_import_filtered():
                outer_may_end.set()
                inner_done.wait(10)
            assert len(sys.meta_path) == len(before) + 1  # the main thread's block still runs
        with first_import_filtered():
            assert len(sys.meta_path) == len(before) + 1 and "TF_CPP_MIN_LOG_LEVEL" in os.environ
            thread = threading.Thread(target=other_thread)
            thread.start()
            outer_may_end.wait(10)
        assert len(sys.meta_path) == len(before) + 1  # the other thread's block still runs
        inner_done.set()
        thread.join()
        assert sys.meta_path == before and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        assert "tensorflow" not in sys.modules
        print("ok")
    """
    done = _run_child(_fake_tensorflow(tmp_path, CHATTER), script)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_real_tensorflow_imports_silently() -> None:
    script = (
        "from moviegenre.core.runtime.quiet_tensorflow import first_import_filtered\n"
        "with first_import_filtered():\n"
        "    import keras, tensorflow as tf\n"
        "tf.constant(1.0) + 1; tf.config.list_physical_devices()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MOVIEGENRE_TF_LOGS")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if not Path("/proc/driver/nvidia/version").exists():
        assert done.stderr == ""
