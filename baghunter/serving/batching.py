"""Micro-batching: concurrent single-image requests share one model call.

A CNN scores 16 images in far less than 16 times the time of one (the per-call overhead
and the weight reads are shared), so under load the service queues requests and runs
them together. A request that finds the queue empty while the model is idle is run at
once, alone: waiting for company that is not coming would only add latency. Requests
that arrive while a batch runs gather in the queue; the next batch takes all of them and
waits at most ``max_wait_s`` for more, never exceeding ``max_size`` images. So a lone
request costs one forward pass and no wait, and under load batches fill up and
throughput rises.

Inference runs on one dedicated thread: the event loop stays free to accept and decode
uploads, and the model is never called from two threads at once (the backend already
spreads one call over the CPU cores). Each request is tagged with the model it started
with; a batch only ever holds requests for one model, so during a hot swap the requests
that started on the old model are still answered by it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from baghunter.serving.metrics import ServiceMetrics

logger = logging.getLogger(__name__)


class Predictor(Protocol):
    """What the batcher needs of a model (see :class:`baghunter.serving.holder.ServedModel`)."""

    def predict(self, images: list[np.ndarray]) -> Sequence[Any]:
        """One result per image, in order (ServedModel: a BrandPrediction each)."""
        ...


class PredictionFailed(RuntimeError):
    """The model call for this request's batch raised; other batches are unaffected."""


class BatcherStopped(RuntimeError):
    """The service is shutting down and will not score this request."""


@dataclass
class _Job:
    model: Predictor
    image: np.ndarray
    future: asyncio.Future[Any] = field(repr=False)


class MicroBatcher:
    """Queue single images and score them in batches on one inference thread."""

    def __init__(self, max_size: int, max_wait_s: float, metrics: ServiceMetrics) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        # A job taken from the queue that belongs to another model than the batch being
        # gathered: it opens the next batch instead of waiting behind newer jobs.
        self._held_over: _Job | None = None

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baghunter-infer")
        self._task = asyncio.create_task(self._run(), name="baghunter-micro-batcher")

    async def stop(self) -> None:
        """Stop batching; queued requests fail with :class:`BatcherStopped`."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        pending = [] if self._held_over is None else [self._held_over]
        self._held_over = None
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        _fail_all(pending, _stopping)
        if self._executor is not None:
            # Waits for a model call still running, off the event loop.
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            self._executor = None

    async def predict(self, model: Predictor, image: np.ndarray) -> Any:
        """The result for ``image`` under ``model``, computed in some batch."""
        if self._queue is None or self._task is None:
            raise BatcherStopped("the batcher is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(model, image, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            # A request whose client went away has a cancelled future: do not score it.
            live = [job for job in batch if not job.future.done()]
            if not live:
                continue
            try:
                await self._execute(live)
            except asyncio.CancelledError:
                _fail_all(live, _stopping)
                raise

    async def _gather(self) -> list[_Job]:
        """Wait for a first job, then collect more for the same model until full or timed out."""
        assert self._queue is not None
        if self._held_over is not None:
            first, self._held_over = self._held_over, None
        else:
            first = await self._queue.get()
        batch = [first]
        if self._queue.empty():
            # Idle dispatch: the model is free (batches run one at a time, and this one is
            # gathered only once the last has finished) and nobody else is waiting.
            return batch
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        try:
            while len(batch) < self.max_size:
                try:
                    # Jobs already queued (they arrived while the last batch ran) are taken
                    # without waiting, even once the deadline has passed.
                    if self._queue.empty():
                        async with asyncio.timeout_at(deadline):
                            job = await self._queue.get()
                    else:
                        job = self._queue.get_nowait()
                except TimeoutError:
                    break
                if job.model is not first.model:
                    self._held_over = job
                    break
                batch.append(job)
        except asyncio.CancelledError:
            _fail_all(batch, _stopping)  # stopped mid-gathering: no request left hanging
            raise
        return batch

    async def _execute(self, jobs: Sequence[_Job]) -> None:
        model = jobs[0].model
        images = [job.image for job in jobs]
        self.metrics.batch_size.observe(len(jobs))
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(self._executor, model.predict, images)
            if len(probs) != len(jobs):
                raise ValueError(f"model returned {len(probs)} rows for {len(jobs)} images")
        except Exception as exc:
            logger.exception("model call failed for a batch of %d images", len(jobs))
            self.metrics.batch_failures.inc()
            reason = f"{type(exc).__name__}: {exc}"
            _fail_all(jobs, lambda: PredictionFailed(reason))
            return
        for job, row in zip(jobs, probs, strict=True):
            if not job.future.done():
                job.future.set_result(row)


def _stopping() -> BatcherStopped:
    return BatcherStopped("the service is shutting down")


def _fail_all(jobs: Sequence[_Job], error: Callable[[], Exception]) -> None:
    """Fail each pending job with its own exception, skipping requests already gone.

    A fresh instance per job: one exception raised in many tasks would pile up all their
    tracebacks. A future already done is a request whose client went away (cancelled).
    """
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error())
