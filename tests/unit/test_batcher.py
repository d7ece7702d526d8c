"""The server's prediction queue is bounded: while one batch runs, MAX_QUEUE movies wait and one more is refused."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from moviegenre.serve.batching import Batcher, Scored
from moviegenre.serve.limits import MAX_QUEUE


def test_a_full_queue_refuses_at_once_and_the_waiting_movies_are_all_answered() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def predict(posters: list[str | None], plots: list[str | None]) -> list[Scored]:
        started.set()
        release.wait(10)  # the first batch holds the predictor while the queue fills
        calls.append(len(plots))
        return [Scored([], np.zeros(1, dtype=bool), np.zeros(1), {}) for _ in plots]

    async def scenario() -> None:
        batcher = Batcher(predict, max_batch=MAX_QUEUE)
        worker = asyncio.create_task(batcher.run())
        first = asyncio.create_task(batcher.submit(None, "first"))
        for _ in range(1000):  # until the first movie's batch holds the predictor
            if started.is_set():
                break
            await asyncio.sleep(0.01)
        assert started.is_set(), "the worker never started the first batch"
        waiting = [asyncio.create_task(batcher.submit(None, f"plot {i}")) for i in range(MAX_QUEUE)]
        await asyncio.sleep(0.05)
        assert batcher.queue.qsize() == MAX_QUEUE
        with pytest.raises(asyncio.QueueFull):
            await batcher.submit(None, "one too many")
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, *waiting), timeout=10)
        assert len(answers) == MAX_QUEUE + 1 and calls == [1, MAX_QUEUE]  # the waiting ones in one batch
        worker.cancel()
        batcher.executor.shutdown()

    asyncio.run(scenario())
