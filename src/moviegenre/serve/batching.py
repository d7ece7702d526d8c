"""Predictions one at a time on one worker thread, with the requests that queued meanwhile batched in.

TensorFlow already spreads one prediction over every core, so two at once would not finish
sooner, and neither the Keras models nor the predictor's lazily filled caches are documented
as safe to call from several threads at once. Requests that arrive while a prediction runs
wait in a queue and go together into the next ``Predictor`` call (up to ``MAX_BATCH``), which
costs little more than one movie: that is where the throughput comes from. A movie's
probabilities do not depend on the others in its batch beyond float rounding (about 1e-7).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moviegenre.serve.limits import MAX_BATCH, MAX_QUEUE


@dataclass
class Scored:
    """One movie's result, as the worker computed it (arrays by genre, in vocabulary order)."""

    branches: list[str]
    in_set: np.ndarray
    ensemble: np.ndarray
    by_branch: dict[str, np.ndarray]


@dataclass
class _Job:
    poster: str | None
    plot: str | None
    future: asyncio.Future[Scored]


@dataclass
class Batcher:
    """One prediction at a time on one thread, with the requests that queued meanwhile batched in."""

    predict: Callable[[list[str | None], list[str | None]], list[Scored]]
    max_batch: int = MAX_BATCH
    queue: asyncio.Queue[_Job] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUE))
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
    )
    done: int = 0

    async def submit(self, poster: str | None, plot: str | None) -> Scored:
        """The movie's result; ``asyncio.QueueFull`` at once when the queue is full."""
        future: asyncio.Future[Scored] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Job(poster, plot, future))
        return await future

    async def run(self) -> None:
        """Take what is queued (at least one request), predict it in one call, hand out the rows."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            while len(jobs) < self.max_batch and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            jobs = [job for job in jobs if not job.future.done()]  # clients that gave up
            if not jobs:
                continue
            results = await loop.run_in_executor(self.executor, self._predict_each, jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self.done += len(jobs)

    def _predict_each(self, jobs: list[_Job]) -> list[Scored | BaseException]:
        """The batch in one call; if it fails, each movie alone, so that one bad movie fails alone."""
        try:
            return list(self.predict([j.poster for j in jobs], [j.plot for j in jobs]))
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        results: list[Scored | BaseException] = []
        for job in jobs:
            try:
                results.extend(self.predict([job.poster], [job.plot]))
            except Exception as exc:
                results.append(exc)
        return results


def scorer(predictor: Any) -> Callable[[list[str | None], list[str | None]], list[Scored]]:
    """The predictor's call for a batch, cut into one ``Scored`` per movie. The genre sets are the
    predictor's own, from the same ensemble call as the probabilities: never recomputed here."""
    from moviegenre.predict.predictor import branches_used

    def predict(posters: list[str | None], plots: list[str | None]) -> list[Scored]:
        scores, sets = predictor.predict_with_sets(posters, plots)
        results = []
        for row in range(len(posters)):
            used = branches_used(scores, row)
            by_branch = {b: scores[b][row] for b in used}
            results.append(Scored(used, sets[row], scores["ensemble"][row], by_branch))
        return results

    return predict
