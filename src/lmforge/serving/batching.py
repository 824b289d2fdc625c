"""A bounded request queue with dynamic micro-batching, run by worker threads.

Requests that can share a forward pass (same model, same operation, same options) wait together
under one key. A worker takes the key whose oldest request has waited longest, and runs it as soon
as it holds ``max_batch_size`` items or its oldest request has waited ``max_wait_ms``. The queue
holds at most ``queue_size`` requests: one more is refused at once (:class:`QueueFull`), so an
overloaded service sheds load instead of growing a backlog it can never serve.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from lmforge.errors import LmforgeError


class QueueFull(LmforgeError):
    """The request queue is full; the caller should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Stopped(LmforgeError):
    """The engine is shutting down and takes no new requests."""


@dataclass(eq=False)
class Job:
    """One request waiting for its batch.

    Attributes:
        key: Requests with equal keys may run in one batch.
        items: The request's inputs (texts, prompts); results come back one per item.
        payload: Whatever else the batch function needs (pairs, options...).
        alone: Run without company (streamed generation, seeded sampling).
        future: Resolves to the list of this request's results, in item order.
        enqueued: ``time.monotonic()`` when it entered the queue.
    """

    key: Hashable
    items: list[Any]
    payload: dict[str, Any] = field(default_factory=dict)
    alone: bool = False
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


# Keys of jobs that run alone: never equal to a caller's key.
_ALONE = object()

# batch function: (key, jobs) -> one result list per job, in job order.
BatchFn = Callable[[Hashable, list[Job]], list[list[Any]]]


class Batcher:
    """Worker threads that run queued jobs in micro-batches.

    Args:
        run_batch: Runs one batch; an exception fails the batch's jobs (each is retried alone first when there were several).
        max_batch_size: Most items in one batch (a larger single request runs alone).
        max_wait_ms: Longest time the oldest request of a key waits for company.
        queue_size: Most requests waiting; one more raises :class:`QueueFull`.
        threads: Worker threads.
        on_batch: Called after each batch with ``(key, items, seconds)``.
        on_depth: Called with the number of waiting requests whenever it changes.
    """

    def __init__(self, run_batch: BatchFn, max_batch_size: int = 32, max_wait_ms: float = 5.0, queue_size: int = 256,
                 threads: int = 1, on_batch: Callable[[Hashable, int, float], None] | None = None,
                 on_depth: Callable[[int], None] | None = None) -> None:
        self.run_batch, self.max_batch_size, self.max_wait = run_batch, max_batch_size, max_wait_ms / 1000.0
        self.queue_size, self.threads = queue_size, threads
        self.on_batch, self.on_depth = on_batch or (lambda *_: None), on_depth or (lambda _: None)
        self._cond = threading.Condition()
        self._pending: OrderedDict[Hashable, deque[Job]] = OrderedDict()
        self._depth, self._running, self._closing = 0, 0, False
        self._workers: list[threading.Thread] = []
        self._seconds_per_batch = 0.05
        self._alone = itertools.count()

    @property
    def depth(self) -> int:
        """Requests waiting (not yet taken by a worker)."""
        return self._depth

    @property
    def busy(self) -> int:
        """Requests waiting plus those in batches being run."""
        return self._depth + self._running

    def start(self) -> None:
        """Start the worker threads (once; after a fork, in the process that serves)."""
        with self._cond:
            if self._workers:
                return
            self._closing = False
            self._workers = [threading.Thread(target=self._loop, name=f"lmforge-batch-{i}", daemon=True) for i in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job`` and return its future.

        Raises:
            QueueFull: ``queue_size`` requests are already waiting.
            Stopped: The batcher is closing.
        """
        with self._cond:
            if self._closing:
                raise Stopped("the service is shutting down; retry on another replica")
            if self._depth >= self.queue_size:
                raise QueueFull(f"the request queue is full ({self.queue_size} waiting); retry shortly", self.retry_after())
            key = (_ALONE, next(self._alone)) if job.alone else job.key
            self._pending.setdefault(key, deque()).append(job)
            self._depth += 1
            self._cond.notify()
        self.on_depth(self._depth)
        return job.future

    def retry_after(self) -> float:
        """Seconds until the queue has likely drained enough to take a request: the backlog's batches at the recent pace."""
        batches = self._depth / max(1, self.max_batch_size * self.threads) + 1
        return max(1.0, round(batches * self._seconds_per_batch, 1))

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Stop taking requests; with ``drain``, finish the queued ones first (else fail them with :class:`Stopped`).

        Returns:
            Whether every worker finished within ``timeout``.
        """
        with self._cond:
            self._closing = True
            if not drain:
                for jobs in self._pending.values():
                    for job in jobs:
                        if job.future.set_running_or_notify_cancel():
                            job.future.set_exception(Stopped("the service shut down before this request ran"))
                self._pending.clear()
                self._depth = 0
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in self._workers)

    def _ready_key(self, now: float) -> tuple[Hashable | None, float]:
        """The key to run now, or None and how long to wait for one to become ready."""
        oldest_key = min(self._pending, key=lambda k: self._pending[k][0].enqueued)
        jobs = self._pending[oldest_key]
        waited = now - jobs[0].enqueued
        items = sum(len(j.items) for j in jobs)
        if items >= self.max_batch_size or waited >= self.max_wait or self._closing or jobs[0].alone:
            return oldest_key, 0.0
        return None, self.max_wait - waited

    def _wait_for_key(self) -> Hashable | None:
        """Block (holding the condition) until a key is ready to run; None once closing with nothing left."""
        while True:
            if not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
                continue
            key, wait = self._ready_key(time.monotonic())
            if key is not None:
                return key
            self._cond.wait(wait)

    def _take(self) -> tuple[Hashable, list[Job]] | None:
        while True:
            with self._cond:
                key = self._wait_for_key()
                if key is None:
                    return None
                jobs, queue, items = [], self._pending[key], 0
                while queue and (not jobs or items + len(queue[0].items) <= self.max_batch_size):
                    job = queue.popleft()
                    self._depth -= 1
                    # A request whose caller gave up (timeout, disconnect) is dropped here, before it costs a forward pass.
                    if job.future.set_running_or_notify_cancel():
                        jobs.append(job)
                        items += len(job.items)
                if not queue:
                    del self._pending[key]
                self._running += len(jobs)
                depth = self._depth
            self.on_depth(depth)
            if jobs:
                return key, jobs

    def _loop(self) -> None:
        while (taken := self._take()) is not None:
            _, jobs = taken
            try:
                # The job's own key: jobs that run alone wait under a private one.
                self._run(jobs[0].key, jobs)
            finally:
                with self._cond:
                    self._running -= len(jobs)

    def _run(self, key: Hashable, jobs: list[Job]) -> None:
        start = time.perf_counter()
        try:
            results = self.run_batch(key, jobs)
        except Exception as exc:  # noqa: BLE001  (delivered to the callers, never lost in a thread)
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            # One bad request must not fail its batch-mates: run each alone.
            for job in jobs:
                self._run(key, [job])
            return
        seconds = time.perf_counter() - start
        self._seconds_per_batch = 0.8 * self._seconds_per_batch + 0.2 * seconds
        self.on_batch(key, sum(len(j.items) for j in jobs), seconds)
        if len(results) != len(jobs):
            for job in jobs:
                job.future.set_exception(RuntimeError(f"a batch of {len(jobs)} requests gave {len(results)} results"))
            return
        for job, result in zip(jobs, results):
            job.future.set_result(result)
