"""Deadlines for reading request bodies, kept by one sweeper (``timers.Sweeper``) instead
of a timer each: a body that takes longer than its deadline is rare. The late read's task
is cancelled while it waits for a chunk; ``finish`` tells the reader so, and undoes the
cancellation, so that it answers 408 instead.
"""

from __future__ import annotations

import asyncio

from ..timers import Sweeper

TICK = 0.1


class Deadlines:
    def __init__(self) -> None:
        self._late: set[asyncio.Task[object]] = set()
        self._sweeper: Sweeper[asyncio.Task[object]] = Sweeper(TICK, self._cancel)

    def start(self, seconds: float) -> asyncio.Task[object]:
        """Register the current task, due ``seconds`` from now."""
        task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
        self._sweeper.arm(task, task.get_loop(), seconds)
        return task

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Unregister; True when the task was cancelled for being late (the caller then
        undoes that cancellation and answers the timeout)."""
        self._sweeper.disarm(task)
        if task in self._late:
            self._late.discard(task)
            task.uncancel()
            return True
        return False

    def _cancel(self, task: asyncio.Task[object]) -> None:
        self._late.add(task)
        task.cancel()


deadlines = Deadlines()
