"""Connecting to the cluster Dask's setting names, and running shards on it in order.

The engine is chosen by Dask's own setting, not by a param: ``scheduler-address`` in Dask's
config (``DASK_SCHEDULER_ADDRESS``, or Dask's config file), or an address the command line
was given. Without one, ``engine()`` yields None and the caller runs in-process, as before.

Every way a run on a cluster can go wrong ends as one ``MovieGenreError`` line naming the
address or the shard, within a bounded time, and before the driver writes anything:

- a scheduler that cannot be reached: after Dask's setting ``moviegenre.connect-timeout``
  (``DASK_MOVIEGENRE__CONNECT_TIMEOUT``, default ten seconds), never a silent fallback
  to in-process (the user asked for a cluster; a run ten times slower than expected is
  worse than a clear refusal);
- a scheduler without workers, at the start or for ``NO_WORKER_S`` during a run;
- a worker with other package versions or another moviegenre revision, before any work;
- a shard whose workers keep dying (Dask's ``distributed.scheduler.allowed-failures``), named
  with its first movie ids; a worker that dies once costs a retry, not the run.

``map`` keeps only a few shards ahead of the one the driver waits for (twice the cluster's
threads), so the driver's memory stays flat however many rows there are, and it yields the
results in shard order, whatever order the workers finish them in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

from moviegenre.cluster import versions
from moviegenre.cluster.shards import Shard
from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

IN_PROCESS = "in-process"
ADDRESS_KEY = "scheduler-address"  # Dask's own setting; DASK_SCHEDULER_ADDRESS in the environment
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT_KEY = "moviegenre.connect-timeout"
DEFAULT_CONNECT_TIMEOUT = "10s"  # a scheduler on the network answers in well under a second
FIRST_WORKER_S = 30.0  # a scheduler with no worker yet: how long to wait for one
NO_WORKER_S = 60.0  # during a run: how long the cluster may have no worker at all
POLL_S = 0.05  # how often the driver looks for finished shards (a shard takes seconds)
WATCH_S = 5.0  # how often it asks the scheduler how many workers it has
SETTLE_S = 0.5  # after a failure, for the scheduler's word on the other shards of the same death
CLOSE_TIMEOUT_S = 10.0

R = TypeVar("R")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def connect_timeout_s() -> float:
    """Seconds to wait for the scheduler, as Dask's config says (``moviegenre.connect-timeout``:
    ``"10s"``, ``"1 minute"`` or a number of seconds), else ``DEFAULT_CONNECT_TIMEOUT``."""
    import dask.config
    from dask.utils import parse_timedelta

    value = dask.config.get(CONNECT_TIMEOUT_KEY, DEFAULT_CONNECT_TIMEOUT)
    try:
        seconds = parse_timedelta(value, default="seconds")
    except (KeyError, TypeError, ValueError):
        seconds = None
    if isinstance(value, bool) or seconds is None or not 0 < seconds < float("inf"):
        raise MovieGenreError(
            f"Dask config {CONNECT_TIMEOUT_KEY} (DASK_MOVIEGENRE__CONNECT_TIMEOUT): {value!r}; "
            "expected a positive duration such as 10s"
        )
    return float(seconds)


def configured_address() -> tuple[str, str] | None:
    """The scheduler Dask's config names and where that came from, or None (in-process)."""
    import dask.config

    value = dask.config.get(ADDRESS_KEY, None)
    if value is None or not str(value).strip():
        return None
    source = ADDRESS_ENV if os.environ.get(ADDRESS_ENV, "").strip() else f"Dask config {ADDRESS_KEY}"
    return str(value).strip(), source


@contextlib.contextmanager
def engine(address: str | None = None, source: str = "--scheduler") -> Iterator[Engine | None]:
    """The cluster at ``address`` (given by ``source``), else the one Dask's config names, else None.

    Closed on the way out, whatever happens inside.
    """
    chosen = (address.strip(), source) if address and address.strip() else configured_address()
    if chosen is None:
        yield None
        return
    connected = Engine.connect(*chosen)
    try:
        yield connected
    finally:
        connected.close()


def describe(engine: Engine | None) -> str | dict[str, Any]:
    """What ran the work, for ``metrics/timings/<stage>.json``: ``in-process``, or the cluster."""
    return IN_PROCESS if engine is None else dict(engine.description)


class Engine:
    """A client of one Dask scheduler whose workers run the driver's versions."""

    def __init__(self, client: Any, address: str, source: str) -> None:
        self.client, self.address, self.source = client, address, source
        self.expected = versions.package_versions()
        self.description: dict[str, Any] = {"scheduler": address}
        self.preparations: list[tuple[Callable[..., Any], tuple]] = []

    @classmethod
    def connect(cls, address: str, source: str) -> Engine:
        """Connect within ``connect_timeout_s()``, wait for a worker, and check every worker's versions."""
        from distributed import Client

        timeout = connect_timeout_s()
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:  # refused, unknown host, a malformed address: all mean "not there"
            raise MovieGenreError(
                f"scheduler {address} ({source}): cannot connect within {timeout:g} s ({_first_line(exc)}); "
                f"start it, or unset {source} to run in-process"
            ) from None
        connected = cls(client, address, source)
        try:
            connected._wait_for_workers()
            connected.check_versions()
        except BaseException:
            connected.close()
            raise
        log.info("engine: scheduler %s, %d workers, %d threads", address, *connected._size())
        return connected

    def _size(self) -> tuple[int, int]:
        threads = self.client.nthreads()
        self.description = {"scheduler": self.address, "workers": len(threads), "threads": sum(threads.values())}
        return len(threads), sum(threads.values())

    def _wait_for_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=FIRST_WORKER_S)
        except Exception:
            raise MovieGenreError(
                f"scheduler {self.address} ({self.source}): no worker joined within {FIRST_WORKER_S:g} s; "
                f"start some (`dask worker {self.address}`)"
            ) from None

    def check_versions(self, expected: dict[str, str] | None = None) -> None:
        """Refuse a scheduler or worker whose packages or moviegenre code are not the driver's (``expected``)."""
        expected = expected or self.expected
        try:
            scheduler = self.client.get_versions(check=False)["scheduler"]["packages"]
            found = self.client.run(versions.package_versions)
        except Exception as exc:  # a worker that cannot even unpickle moviegenre's function
            raise MovieGenreError(
                f"scheduler {self.address}: its workers cannot report their versions ({_first_line(exc)}); "
                "install moviegenre and requirements.lock on every worker"
            ) from None
        problems = [versions.problem(f"scheduler {self.address}", expected, scheduler, versions.SCHEDULER_PACKAGES)]
        problems += [versions.problem(f"worker {worker}", expected, found[worker]) for worker in sorted(found)]
        problems = [p for p in problems if p]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise MovieGenreError(problems[0] + more)

    def prepare_workers(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on each worker before it loads a model, as the driver ran it on
        itself (TensorFlow's devices, threads and determinism: what the bytes depend on)."""
        self.preparations.append((function, args))

    def threads(self) -> int:
        return max(1, self._size()[1])

    @contextlib.contextmanager
    def loaded(self, what: str, load: Callable[..., Any], *args: Any) -> Iterator[str]:
        """``load(*args)`` once on every worker (and on any that joins later) for the shards of one run;
        yields the name ``map`` finds it by, and unloads it on the way out."""
        from moviegenre.cluster.worker import WorkerModel

        name = f"moviegenre-{what.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            try:
                plugin = WorkerModel(name, what, load, args, self.expected, tuple(self.preparations))
                self.client.register_plugin(plugin, name=name)
            except MovieGenreError as exc:
                raise MovieGenreError(str(exc)) from None  # the worker's line, without its remote traceback
            except Exception as exc:
                raise MovieGenreError(
                    f"scheduler {self.address}: the workers cannot load the {what} ({_first_line(exc)})"
                ) from None
            log.info("%s loaded on every worker in %.1f s", what, time.perf_counter() - started)
            yield name
        finally:
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(name)

    def map(
        self, model: str, function: Callable[[Any, Any], R], shards: Iterable[Shard], *, total: int, desc: str,
        unit: str, progress: bool = True,
    ) -> Iterator[R]:  # fmt: skip
        """``function(<the model loaded as model>, shard.payload)`` for every shard on the cluster,
        yielded in shard order; one progress bar counts the rows done across the cluster."""
        from moviegenre.cluster.worker import run_shard

        ahead = 2 * self.threads()
        source, token = iter(shards), uuid.uuid4().hex[:8]
        pending: dict[int, tuple[Shard, Any]] = {}
        finished: dict[int, R] = {}
        following, exhausted = 0, False
        last_worker_seen = watched = time.monotonic()
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
            try:
                while True:
                    while not exhausted and len(pending) + len(finished) < ahead:
                        shard = next(source, None)
                        if shard is None:
                            exhausted = True
                            break
                        key = f"{model}-{token}-shard-{shard.index}"
                        future = self.client.submit(run_shard, model, function, shard, key=key, pure=False)
                        pending[shard.index] = (shard, future)
                    if exhausted and not pending and not finished:
                        return
                    ready = sorted(i for i, (_, future) in pending.items() if future.done())
                    for index in ready:
                        shard, future = pending[index]
                        if future.status != "finished":
                            self._raise_failure(pending)
                        finished[index] = future.result()
                        future.release()
                        del pending[index]
                        bar.update(shard.rows)
                    while following in finished:
                        yield finished.pop(following)
                        following += 1
                    if not ready:
                        now = time.monotonic()
                        if now - watched > WATCH_S:
                            watched = now
                            if self._workers_now():
                                last_worker_seen = now
                            elif now - last_worker_seen > NO_WORKER_S:
                                raise MovieGenreError(
                                    f"scheduler {self.address}: no worker for {NO_WORKER_S:g} s with "
                                    f"{len(pending)} shard(s) unfinished (the workers died or left); "
                                    "nothing was written"
                                )
                        time.sleep(POLL_S)
            finally:
                for _, future in pending.values():
                    with contextlib.suppress(Exception):
                        future.cancel()

    def _workers_now(self) -> int:
        try:
            return len(self.client.nthreads())
        except Exception as exc:
            raise MovieGenreError(f"scheduler {self.address}: lost during the run ({_first_line(exc)})") from None

    def _raise_failure(self, pending: dict[int, tuple[Shard, Any]]) -> None:
        """The failure of the first shard, in shard order, that failed: a worker's death takes the
        shards queued behind the one it was running with it, and those come later in the order."""
        from distributed import KilledWorker

        time.sleep(SETTLE_S)
        failed = sorted(i for i, (_, future) in pending.items() if future.done() and future.status != "finished")
        shard, future = pending[failed[0]]
        if future.status == "cancelled":
            raise MovieGenreError(
                f"scheduler {self.address}: {shard.name()} was cancelled (the scheduler restarted or was lost); "
                "nothing was written"
            )
        exc = future.exception()
        if isinstance(exc, KilledWorker):
            deaths = exc.allowed_failures + 1
            raise MovieGenreError(
                f"{shard.name()}: the workers running it died {deaths} time{'s' if deaths > 1 else ''} "
                f"(last {exc.last_worker.address}; Dask's distributed.scheduler.allowed-failures is "
                f"{exc.allowed_failures}); see that worker's log (out of memory?); nothing was written"
            )
        if isinstance(exc, MovieGenreError):
            raise MovieGenreError(str(exc))
        raise MovieGenreError(f"{shard.name()}: failed on the cluster {self.address} ({_first_line(exc)})")

    @contextlib.contextmanager
    def joblib(self) -> Iterator[None]:
        """joblib's Parallel runs on this cluster inside (scikit-learn's fits, the forests' predictions)."""
        import joblib
        from distributed import KilledWorker

        try:
            with joblib.parallel_backend("dask", client=self.client):
                yield
        except KilledWorker as exc:
            raise MovieGenreError(
                f"scheduler {self.address}: a joblib task's workers died {exc.allowed_failures + 1} times "
                f"(last {exc.last_worker.address}); see that worker's log (out of memory?); nothing was written"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=CLOSE_TIMEOUT_S)
