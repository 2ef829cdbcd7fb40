"""The micro-batcher on its own: batch limits, per-request rows, failure isolation.

The "models" here are plain objects that record the batches they are given and answer
each image with a row derived from its pixels, so every caller can check it got the row
of its own image back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import pytest

from baghunter.serving.batching import BatcherStopped, MicroBatcher, PredictionFailed
from baghunter.serving.metrics import ServiceMetrics

T = TypeVar("T")
POISON = 13  # an image filled with this value makes the recording model raise


class RecordingModel:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        values = [int(image[0, 0, 0]) for image in images]
        self.batches.append(values)
        if POISON in values:
            raise RuntimeError("poisoned batch")
        return np.array([[value, value * 2] for value in values], dtype=np.float32)


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def run_with_batcher(
    scenario: Callable[[MicroBatcher], Awaitable[T]], *, max_size: int, max_wait_s: float = 0.05
) -> T:
    """Run ``scenario`` against a started batcher, stopping it afterwards."""

    async def main() -> T:
        batcher = MicroBatcher(max_size=max_size, max_wait_s=max_wait_s, metrics=ServiceMetrics())
        await batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_are_batched_up_to_the_limit() -> None:
    model = RecordingModel()

    async def scenario(batcher: MicroBatcher) -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.predict(model, image(v)) for v in range(10)))

    rows = run_with_batcher(scenario, max_size=4)

    assert [row.tolist() for row in rows] == [[v, 2 * v] for v in range(10)]
    assert [len(batch) for batch in model.batches] == [4, 4, 2]
    assert sorted(v for batch in model.batches for v in batch) == list(range(10))


def test_a_lone_request_is_dispatched_at_once() -> None:
    """Nothing queued and the model idle: no batch window is waited for."""
    model = RecordingModel()

    async def scenario(batcher: MicroBatcher) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.predict(model, image(1))
        return loop.time() - started

    # A window far longer than the call: had the request waited for it, this would show.
    elapsed = run_with_batcher(scenario, max_size=16, max_wait_s=30.0)

    assert model.batches == [[1]]
    assert elapsed < 10.0


def test_requests_arriving_during_a_batch_form_the_next_one() -> None:
    """The first request runs alone at once; those that come meanwhile are batched."""
    model = SlowModel(delay_s=0.3)

    async def scenario(batcher: MicroBatcher) -> list[np.ndarray]:
        model.loop = asyncio.get_running_loop()
        first = asyncio.create_task(batcher.predict(model, image(0)))
        await model.started.wait()  # the first batch is running on the inference thread
        rest = [asyncio.create_task(batcher.predict(model, image(v))) for v in range(1, 6)]
        return await asyncio.gather(first, *rest)

    rows = run_with_batcher(scenario, max_size=16, max_wait_s=0.01)

    assert [row.tolist() for row in rows] == [[v, 2 * v] for v in range(6)]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


class SlowModel(RecordingModel):
    """Takes ``delay_s`` per batch and says when the first one started."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.started = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None  # the test's, set once it runs

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.started.set)
        threading.Event().wait(self.delay_s)
        return super().predict(images)


def test_a_failing_batch_fails_only_its_own_requests() -> None:
    model = RecordingModel()

    async def scenario(batcher: MicroBatcher) -> list[np.ndarray | BaseException]:
        values = [POISON, 1, 2, 3]
        return await asyncio.gather(
            *(batcher.predict(model, image(v)) for v in values), return_exceptions=True
        )

    first, second, third, fourth = run_with_batcher(scenario, max_size=2)

    assert model.batches == [[POISON, 1], [2, 3]]
    assert isinstance(first, PredictionFailed) and isinstance(second, PredictionFailed)
    assert isinstance(third, np.ndarray) and third.tolist() == [2, 4]
    assert isinstance(fourth, np.ndarray) and fourth.tolist() == [3, 6]


def test_requests_for_different_models_never_share_a_batch() -> None:
    old, new = RecordingModel(), RecordingModel()

    async def scenario(batcher: MicroBatcher) -> list[np.ndarray]:
        jobs = [(old, 1), (old, 2), (new, 3), (old, 4), (new, 5)]
        return await asyncio.gather(*(batcher.predict(m, image(v)) for m, v in jobs))

    rows = run_with_batcher(scenario, max_size=8)

    assert [row.tolist()[0] for row in rows] == [1, 2, 3, 4, 5]
    assert sorted(v for batch in old.batches for v in batch) == [1, 2, 4]
    assert sorted(v for batch in new.batches for v in batch) == [3, 5]


def test_batch_sizes_are_counted() -> None:
    model = RecordingModel()
    metrics = ServiceMetrics()

    async def main() -> None:
        batcher = MicroBatcher(max_size=3, max_wait_s=0.05, metrics=metrics)
        await batcher.start()
        try:
            await asyncio.gather(*(batcher.predict(model, image(v)) for v in range(7)))
        finally:
            await batcher.stop()

    asyncio.run(main())

    text = metrics.render()
    assert "baghunter_batch_size_count 3\n" in text  # batches of 3, 3 and 1
    assert "baghunter_batch_size_sum 7\n" in text


def test_predict_after_stop_is_refused() -> None:
    model = RecordingModel()

    async def main() -> None:
        batcher = MicroBatcher(max_size=2, max_wait_s=0.01, metrics=ServiceMetrics())
        await batcher.start()
        await batcher.stop()
        await batcher.predict(model, image(1))

    with pytest.raises(BatcherStopped):
        asyncio.run(main())


def test_stop_fails_running_and_queued_requests() -> None:
    started, release = threading.Event(), threading.Event()

    class BlockingModel:
        def predict(self, images: list[np.ndarray]) -> np.ndarray:
            started.set()
            release.wait(timeout=10)
            return np.zeros((len(images), 2), np.float32)

    async def main() -> list[np.ndarray | BaseException]:
        batcher = MicroBatcher(max_size=1, max_wait_s=0.0, metrics=ServiceMetrics())
        await batcher.start()
        model = BlockingModel()
        requests = [asyncio.create_task(batcher.predict(model, image(v))) for v in range(3)]
        await asyncio.to_thread(started.wait, 10)  # the first request is being scored
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.05)  # stop() has failed the requests and waits for the call
        release.set()
        await stopping
        return await asyncio.gather(*requests, return_exceptions=True)

    outcomes = asyncio.run(main())

    assert [type(outcome) for outcome in outcomes] == [BatcherStopped] * 3
