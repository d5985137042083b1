"""Group commit: one writer per process drains a bounded queue into batched transactions.

Each request waits on a future that is resolved only after the transaction holding
its delivery has committed (answer after commit). A full queue is refused at once
(503 + Retry-After) instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from .logs import failure
from .store.base import COMMITTING, StorageError, Store, WriteRequest, WriteResult

log = logging.getLogger("receiver.writer")


class _Once:
    """A callback that runs once, however often it is called."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn: Callable[[], None] | None = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()

    def on_task(self, _: asyncio.Task[None]) -> None:
        self()


class Overloaded(Exception):
    """The write queue is full."""


class Writer:
    def __init__(
        self,
        store: Store,
        queue_size: int = 10_000,
        batch_max: int = 512,
        route: Callable[[WriteRequest], None] | None = None,
        committed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_max = batch_max
        self.route = route
        """Fills a request's ``forward`` (the messages to write with its events)."""
        self.committed = committed
        """Called after each committed batch (wakes the forwarder)."""
        self.queue_size = queue_size
        # A deque and one wake-up future rather than an asyncio.Queue: a put and a get
        # cost a few Python calls each, per delivery, on the event loop.
        self._queue: deque[tuple[WriteRequest, asyncio.Future[WriteResult]]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        """Batches being written or committed."""

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="receiver-writer")

    async def stop(self) -> None:
        if self._task is not None:
            # Let what is queued commit before the process goes away.
            while self._queue and not self._task.done():
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # The batches taken from the queue commit (or fail) and answer.
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def submit(self, request: WriteRequest) -> WriteResult:
        return await self.enqueue(request)

    def enqueue(self, request: WriteRequest) -> asyncio.Future[WriteResult]:
        """``submit`` without its coroutine: queue the request (or raise at once) and give
        the future its result arrives in."""
        task = self._task
        if task is None or task.done():
            raise StorageError("the writer is not running")
        if len(self._queue) >= self.queue_size:
            raise Overloaded
        if self.route is not None:
            self.route(request)
        future: asyncio.Future[WriteResult] = task.get_loop().create_future()
        self._queue.append((request, future))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return future

    async def _run(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        # A store whose batches may overlap (``overlaps_commit``: PostgreSQL, whose batches
        # lock what they touch, as two processes' do) has the next batch prepared and
        # written while one commits: the commit is a round trip and a flush the cycle
        # would otherwise wait for. One batch at a time is being written, so each takes
        # what queued meanwhile. Every answer still waits for its own batch's commit.
        overlap = self.store.overlaps_commit
        writing = asyncio.Semaphore(1)
        while True:
            while not queue:
                self._wakeup = loop.create_future()
                await self._wakeup
            self._wakeup = None
            await writing.acquire()
            batch = [queue.popleft() for _ in range(min(len(queue), self.batch_max))]
            done = _Once(writing.release)
            work = self._commit(batch, done if overlap else None)
            task = asyncio.create_task(work, name="receiver-writer-batch")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(done.on_task)

    async def _commit(
        self, batch: list[tuple[WriteRequest, asyncio.Future[WriteResult]]], committing: _Once | None
    ) -> None:
        COMMITTING.set(committing)  # this task's own context
        try:
            results = await self.store.write_batch([r for r, _ in batch])
        except Exception as e:  # the transaction failed: nothing in it is stored
            log.error(
                "batch of %d not committed (deliveries %s): %s",
                len(batch),
                ",".join(r.delivery.id for r, _ in batch[:10]) + (",…" if len(batch) > 10 else ""),
                failure(e),
            )
            # Storage trouble is a 503 the vendor retries; anything else is a bug, and
            # reaches the ingest edge as itself (a 500, logged there by delivery id).
            err: Exception = e
            if isinstance(e, OSError | TimeoutError):
                err = StorageError(type(e).__name__)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        if self.committed is not None:
            self.committed()
        for (req, fut), res in zip(batch, results, strict=True):
            if isinstance(res, Exception):
                # This delivery alone failed (its neighbours committed): a bug or bad
                # data, never storage trouble. Logged as where, never what.
                log.error("delivery %s not stored: %s", req.delivery.id, failure(res))
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)
