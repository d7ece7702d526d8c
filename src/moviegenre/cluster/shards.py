"""Rows in fixed shards: what travels to a worker, and the same work run in-process.

A shard is a run of whole batches, planned on the driver exactly as the in-process path plans
them, so a worker runs the very batches the driver would have: the bytes cannot depend on how
many workers there are or on which one ran what. Its size is Dask's setting
``moviegenre.shard-rows`` (``DASK_MOVIEGENRE__SHARD_ROWS``), rounded down to whole batches: a
knob for the engine like the scheduler's address, never a param, since no output changes with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

from moviegenre.core.errors import MovieGenreError

log = logging.getLogger(__name__)

SHARD_ROWS_KEY = "moviegenre.shard-rows"
DEFAULT_SHARD_ROWS = 256  # a few seconds of an encoder's work on one CPU: small beside a task's cost, and few to send
NAMED_IDS = 3  # movie ids an error names for a shard

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Shard:
    """One task's worth of rows: its place in the order, what a user can find it by, and its data."""

    index: int
    rows: int  # rows it carries, for the progress bar (an encoder's windows, a catalogue's movies)
    ids: tuple[str, ...]  # its first movies' ids, for an error line
    payload: Any  # what the worker's function is handed beside the model

    def name(self) -> str:
        """``shard 3 (movies 0012345, 0012346, ...)``: how an error line names it."""
        more = ", ..." if len(self.ids) >= NAMED_IDS else ""
        return f"shard {self.index} (movies {', '.join(self.ids)}{more})" if self.ids else f"shard {self.index}"


def shard_rows() -> int:
    """Rows per shard as Dask's config says (``moviegenre.shard-rows``), else ``DEFAULT_SHARD_ROWS``."""
    import dask.config

    value = dask.config.get(SHARD_ROWS_KEY, DEFAULT_SHARD_ROWS)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MovieGenreError(
            f"Dask config {SHARD_ROWS_KEY} (DASK_MOVIEGENRE__SHARD_ROWS): {value!r}; expected a positive integer"
        )
    rows = value
    return rows


def batches_per_shard(batch_size: int, rows: int | None = None) -> int:
    """Whole batches per shard: ``rows`` (default ``shard_rows()``) rounded down, at least one.

    Depends on the batch size and the setting only, never on the workers, so the shards of a
    run are the same whatever cluster it runs on.
    """
    rows = shard_rows() if rows is None else rows
    return max(1, rows // max(1, batch_size))


def grouped(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive runs of ``size`` (the last may be shorter), in order."""
    return [items[begin : begin + size] for begin in range(0, len(items), size)]


def first_ids(ids: Sequence[Any] | None, positions: Iterable[int]) -> tuple[str, ...]:
    """The ids at the first few ``positions``, as text: what an error line names a shard by."""
    if ids is None:
        return ()
    found: list[str] = []
    for position in positions:
        text = str(ids[position])
        if text not in found:
            found.append(text)
        if len(found) == NAMED_IDS:
            break
    return tuple(found)


def in_process_map(
    model: Any, function: Callable[[Any, Any], R], shards: Iterable[Shard], *, total: int, desc: str, unit: str,
    progress: bool = True,
) -> Iterator[R]:  # fmt: skip
    """``function(model, shard.payload)`` for each shard in turn, here: the in-process twin of
    ``Engine.map``, for work whose bytes depend on its shards (``predict --dataset``), so that
    both engines cut the same shards."""
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        for shard in shards:
            yield function(model, shard.payload)
            bar.update(shard.rows)
