"""TensorFlow's start-up chatter kept off stderr, while its real problems still reach it.

Importing TensorFlow writes a handful of C++ log lines straight to file descriptor 2, before
its logging is initialised (so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them): that oneDNN is on,
that no CUDA driver was found, which CPU instructions it could use, and, when it first looks
for devices, that ``cuInit`` failed. On a machine without a GPU none of them says anything the
user can act on. The first ``import tensorflow`` of the process (directly, or through Keras)
therefore runs with descriptor 2 sent to a temporary file; the lines known to be chatter are
dropped and every other line is written to stderr as it was. The ``cuInit`` line counts as
chatter only where no NVIDIA driver is loaded: on a GPU machine it is a real problem.

After start-up TensorFlow's C++ logging honours ``TF_CPP_MIN_LOG_LEVEL``, which is set (unless
the user set it) to 2 (errors only) where an NVIDIA driver is loaded, and to 3 where none is:
on a CPU the errors it logs (oneDNN falling back to Eigen for a boolean op, say) are notes, and
a failure that matters raises a Python exception all the same.

The filter applies only inside ``first_import_filtered()``, around the code of the project's
own that imports TensorFlow lazily: a stage's ``main`` (``core.stage.run``) and the loading of
a ``Predictor``. An import hook (a finder on ``sys.meta_path``) catches the first import
wherever in that code it happens; it is there for the block only and removed after, so
importing ``moviegenre`` changes nothing in the process, and a program that uses the package
and imports TensorFlow itself gets TensorFlow as it is. ``TF_CPP_MIN_LOG_LEVEL`` is set at the
same moment, and taken back at the end of a block that imported nothing: once TensorFlow is
loaded it may read the variable at its first log line, after the block. ``MOVIEGENRE_TF_LOGS=all``
leaves TensorFlow's logging as it is.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

ENV = "MOVIEGENRE_TF_LOGS"
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")
CHATTER = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^I\d{4} .* port\.cc:\d+\] oneDNN custom operations are on\.",
    r"^I\d{4} .* cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r"^I\d{4} .* cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
)
NO_GPU_CHATTER = (r"^E\d{4} .* cuda_(platform|executor|diagnostics)\.cc:\d+\] failed call to cuInit",)


def chatter_patterns(gpu_driver: bool) -> list[re.Pattern[str]]:
    """The lines to drop: TensorFlow's start-up notes, and the failed ``cuInit`` where no driver is loaded."""
    return [re.compile(p) for p in (*CHATTER, *(() if gpu_driver else NO_GPU_CHATTER))]


def keep_lines(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    """``text`` without its chatter lines, the other lines unchanged and in order."""
    kept = [line for line in text.splitlines(keepends=True) if not any(p.search(line.rstrip("\n")) for p in patterns)]
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(patterns: Sequence[re.Pattern[str]]) -> Iterator[None]:
    """Send descriptor 2 to a temporary file for the block, then write what is not chatter to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = keep_lines(capture.read().decode("utf-8", "replace"), patterns)
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader under the filter, then asks for its GPUs (the ``cuInit`` line)."""

    def __init__(self, loader: importlib.abc.Loader, patterns: list[re.Pattern[str]]) -> None:
        self.loader, self.patterns = loader, patterns

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with filtered_stderr(self.patterns):
            self.loader.exec_module(module)
            with contextlib.suppress(Exception):  # a broken install shows itself at first use, unfiltered
                module.config.list_physical_devices("GPU")


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, once, and hands it to ``_QuietLoader``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        uninstall()
        for finder in sys.meta_path:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _QuietLoader(spec.loader, chatter_patterns(NVIDIA_DRIVER.exists()))
                return spec
        return None


_FINDER = _TensorFlowFinder()
LEVEL = "TF_CPP_MIN_LOG_LEVEL"
_lock = threading.Lock()
_blocks = 0  # blocks in progress, in any thread: the finder stays until the last one ends
_level_set = False  # whether the first of them set LEVEL (and the last may take it back)


@contextlib.contextmanager
def first_import_filtered() -> Iterator[None]:
    """Filter TensorFlow's first import (and set its log level) if it happens within the block.

    Nothing is done where TensorFlow is already imported or ``MOVIEGENRE_TF_LOGS=all``. Blocks
    may nest and overlap across threads (a Predictor loads its featurizers in threads); the
    finder and the log level are the process's, so they are held while any block runs.
    """
    global _blocks, _level_set
    if os.environ.get(ENV, "").strip().lower() == "all" or "tensorflow" in sys.modules:
        yield
        return
    with _lock:
        _blocks += 1
        if _blocks == 1:
            _level_set = LEVEL not in os.environ
            os.environ.setdefault(LEVEL, "2" if NVIDIA_DRIVER.exists() else "3")
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
    try:
        yield
    finally:
        with _lock:
            _blocks -= 1
            if _blocks == 0:
                uninstall()
                if _level_set and "tensorflow" not in sys.modules:
                    os.environ.pop(LEVEL, None)
                _level_set = False


def uninstall() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_FINDER)
