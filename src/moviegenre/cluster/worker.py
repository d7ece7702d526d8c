"""What runs inside a Dask worker: the model loaded once, and each shard's task.

A model is loaded by a worker plugin when the run starts (and by every worker that joins
later, a restarted one included), so tasks carry rows only: shipping an encoder with each
task would cost more than the rows it encodes. The plugin checks the worker's packages and
code against the driver's first (``versions``), so a worker that joins late with other
versions refuses its shards rather than computing other bits. A load that fails is kept as
the plugin's problem and repeated by each of its tasks: the driver gets the worker's own line.

Test code patches ``run_shard`` in a worker (``dask worker --preload``) to inject faults; it
is looked up by name when a task arrives, which is what makes that possible.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from distributed import WorkerPlugin, get_worker

from moviegenre.cluster import versions
from moviegenre.cluster.shards import Shard
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class WorkerModel(WorkerPlugin):
    """``load(*args)`` once per worker, after the worker's versions are found to be the driver's and
    its ``preparations`` have run."""

    idempotent = False

    def __init__(
        self, name: str, what: str, load: Callable[..., Any], args: tuple, expected: dict[str, str],
        preparations: tuple[tuple[Callable[..., Any], tuple], ...] = (),
    ) -> None:  # fmt: skip
        self.name, self.what, self.load, self.args, self.expected = name, what, load, args, expected
        self.preparations = preparations
        self.model: Any = None
        self.problem = ""

    def setup(self, worker: Any) -> None:
        where = f"worker {worker.address}"
        self.problem = versions.problem(where, self.expected, versions.package_versions())
        if not self.problem:
            try:
                self._prepare(where)
                self.model = self.load(*self.args)
            except MovieGenreError as exc:
                self.problem = f"{where}: {exc}"
            except Exception as exc:  # a worker that cannot build the model: one line, not its traceback
                self.problem = f"{where}: cannot load the {self.what} ({_first_line(exc)})"
        if self.problem:
            log.error("%s", self.problem)
            raise MovieGenreError(self.problem)
        log.info("%s: %s loaded", where, self.what)

    def _prepare(self, where: str) -> None:
        for function, args in self.preparations:
            try:
                function(*args)
            except RuntimeError as exc:  # TensorFlow set up by an earlier run in this worker: it stays as it was
                log.warning("%s: %s kept as an earlier run set it (%s)", where, function.__name__, _first_line(exc))

    def teardown(self, worker: Any) -> None:
        self.model = None


def run_shard(plugin: str, function: Callable[[Any, Any], Any], shard: Shard) -> Any:
    """A shard's task: ``function(model, shard.payload)`` with the model this worker loaded."""
    worker = get_worker()
    loaded = worker.plugins.get(plugin)
    if not isinstance(loaded, WorkerModel):
        raise MovieGenreError(f"worker {worker.address}: no model {plugin} loaded (it joined as the run ended?)")
    if loaded.problem:
        raise MovieGenreError(loaded.problem)
    try:
        return function(loaded.model, shard.payload)
    except MovieGenreError:
        raise
    except Exception as exc:  # one line the driver can print; some errors (a deep recursion) do not even pickle
        raise MovieGenreError(f"{shard.name()}: failed on worker {worker.address} ({_first_line(exc)})") from None
