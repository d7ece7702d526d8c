"""The server's prediction queue is bounded: while one batch runs, MAX_QUEUE movies wait and one more is refused."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from moviegenre.serve.batching import Batcher, Scored
from moviegenre.serve.limits import MAX_QUEUE


class CountingQueue(asyncio.Queue):
    """A queue that sets ``all_put`` once ``expected`` items have been put in it: what the test
    waits for, rather than a sleep that hopes the submitting tasks have run."""

    def __init__(self, maxsize: int, expected: int) -> None:
        super().__init__(maxsize)
        self.expected, self.puts, self.all_put = expected, 0, asyncio.Event()

    def put_nowait(self, item: object) -> None:
        super().put_nowait(item)
        self.puts += 1
        if self.puts == self.expected:
            self.all_put.set()


def test_a_full_queue_refuses_at_once_and_the_waiting_movies_are_all_answered() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def predict(posters: list[str | None], plots: list[str | None]) -> list[Scored]:
        started.set()
        release.wait(10)  # the first batch holds the predictor while the queue fills
        calls.append(len(plots))
        return [Scored([], np.zeros(1, dtype=bool), np.zeros(1), {}) for _ in plots]

    async def scenario() -> None:
        queue = CountingQueue(MAX_QUEUE, expected=1 + MAX_QUEUE)
        batcher = Batcher(predict, max_batch=MAX_QUEUE, queue=queue)
        worker = asyncio.create_task(batcher.run())
        first = asyncio.create_task(batcher.submit(None, "first"))
        assert await asyncio.to_thread(started.wait, 10), "the worker never started the first batch"
        waiting = [asyncio.create_task(batcher.submit(None, f"plot {i}")) for i in range(MAX_QUEUE)]
        await asyncio.wait_for(queue.all_put.wait(), timeout=10)  # every movie has been queued
        assert queue.qsize() == MAX_QUEUE  # and the worker, held by the first batch, took none of them
        assert not any(task.done() for task in [first, *waiting]) and calls == []
        with pytest.raises(asyncio.QueueFull):
            await batcher.submit(None, "one too many")
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, *waiting), timeout=10)
        assert len(answers) == MAX_QUEUE + 1 and calls == [1, MAX_QUEUE]  # the waiting ones in one batch
        worker.cancel()
        batcher.executor.shutdown()

    asyncio.run(scenario())
