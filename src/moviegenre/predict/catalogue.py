"""A catalogue's predictions in fixed shards of movies, in-process or on a Dask cluster.

A movie's probabilities depend in their last bits on the movies scored beside it (the
sentence encoder pads a batch to its longest plot, and a matrix product's sums follow its
shape), so both engines score the very same shards of ``SHARD_MOVIES`` movies, in order: the
same bytes whichever runs them, and a driver that holds one shard's results at a time, however
long the catalogue. On a cluster, each worker loads the ``Predictor`` once (from the project
at the driver's path: the workers share its file system) and is sent each shard's plots and
poster bytes, never a path into the driver's temporary download.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moviegenre.cluster import Engine, Shard, in_process_map
from moviegenre.cluster.shards import first_ids
from moviegenre.core.paths import ProjectPaths
from moviegenre.predict.predictor import Predictor

SHARD_MOVIES = 256  # movies scored together, whatever the engine: part of what the bytes are


@dataclass(frozen=True)
class ShardScores:
    """One shard's answer: the ensemble's probabilities, its genre sets, and each branch's probabilities when asked."""

    ensemble: np.ndarray
    sets: np.ndarray
    branches: dict[str, np.ndarray]


def load_predictor(root: str) -> Predictor:
    """A worker's predictor of the project at ``root``, its featurizers loaded now, from the project:
    state files name paths relative to it (the sentence encoder's preset)."""
    with contextlib.chdir(root):
        predictor = Predictor(ProjectPaths(Path(root)))
        predictor.load_featurizers()
    return predictor


def score_shard(predictor: Predictor, payload: tuple[list[Any], list[str | None], bool]) -> ShardScores:
    """A shard's task: its movies' probabilities and genre sets. A poster comes as a path, or (on a
    cluster) as its name and bytes, written to a temporary file for the featurizers to read."""
    posters, plots, with_branches = payload
    with tempfile.TemporaryDirectory(prefix="moviegenre-shard-") as tmp:
        paths = [_poster_file(poster, Path(tmp), i) for i, poster in enumerate(posters)]
        scores, sets = predictor.predict_with_sets(paths, plots)
    branches = {name: proba for name, proba in scores.items() if name != "ensemble"} if with_branches else {}
    return ShardScores(scores["ensemble"], sets, branches)


def _poster_file(poster: Any, folder: Path, position: int) -> str | None:
    if poster is None or isinstance(poster, str):
        return poster
    name, data = poster
    path = folder / f"{position}{Path(name).suffix}"
    path.write_bytes(data)
    return str(path)


def score_catalogue(
    paths: ProjectPaths, engine: Engine | None, ids: Sequence[Any], posters: list[str | None],
    plots: list[str | None], *, with_branches: bool, predictor: Predictor | None = None,
) -> Generator[ShardScores, None, None]:  # fmt: skip
    """Each shard's scores in order: in-process with ``predictor`` (loaded here if None), or on
    ``engine``'s cluster. Shards are made as they are sent, so their posters' bytes are read a
    few shards ahead, never all at once."""
    spans = [range(begin, min(begin + SHARD_MOVIES, len(plots))) for begin in range(0, len(plots), SHARD_MOVIES)]

    def shards(as_bytes: bool) -> Iterator[Shard]:
        for index, span in enumerate(spans):
            shard_posters = [_read(posters[i]) if as_bytes else posters[i] for i in span]
            payload = (shard_posters, [plots[i] for i in span], with_branches)
            yield Shard(index, len(span), first_ids(ids, span), payload)

    total, desc, unit = len(plots), "predict", " movies"
    if engine is None:
        local = predictor or Predictor(paths)
        yield from in_process_map(local, score_shard, shards(False), total=total, desc=desc, unit=unit)
        return
    with engine.loaded("predictor", load_predictor, str(paths.root.resolve())) as model:
        yield from engine.map(model, score_shard, shards(True), total=total, desc=desc, unit=unit)


def _read(poster: str | None) -> tuple[str, bytes] | None:
    return None if poster is None else (poster, Path(poster).read_bytes())
