"""Deadlines for reading request bodies, kept by one sweeper instead of a timer each.

``asyncio.timeout`` schedules and cancels a timer per request (and the loop's heap keeps
every cancelled one for a while); a body that takes longer than its deadline is rare. So
each read registers its task and deadline in a dict, and one task per loop wakes every
``TICK`` seconds while reads are in flight and cancels the late ones: a deadline is kept
to within ``TICK`` seconds.
"""

from __future__ import annotations

import asyncio

TICK = 0.1


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[asyncio.Task[object], float] = {}
        self._late: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self, seconds: float) -> asyncio.Task[object]:
        """Register the current task, due ``seconds`` from now."""
        task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
        loop = task.get_loop()
        self._due[task] = loop.time() + seconds
        sweeper = self._sweeper
        if sweeper is None or sweeper.done() or sweeper.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep(loop))
        return task

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Unregister; True when the task was cancelled for being late (the caller then
        undoes that cancellation and answers the timeout)."""
        self._due.pop(task, None)
        if task in self._late:
            self._late.discard(task)
            task.uncancel()
            return True
        return False

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._due:
            await asyncio.sleep(TICK)
            now = loop.time()
            for task, due in list(self._due.items()):
                if due <= now and task not in self._late:
                    self._late.add(task)
                    task.cancel()


deadlines = Deadlines()
