"""Deadlines kept by one sweeping task instead of a timer each.

A timer per request (``loop.call_later`` then ``cancel``, or ``asyncio.timeout``) costs
about 2 µs, and the loop's heap keeps every cancelled one for a while; the deadlines here
are almost never reached. So a ``Sweeper`` keeps each key's deadline in a dict (arming
and disarming are a dict write and a pop), and one task per loop wakes every ``tick``
seconds while any is armed and hands the late keys to ``late``: a deadline is kept to
within ``tick`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Sweeper(Generic[K]):
    def __init__(self, tick: float, late: Callable[[K], None]) -> None:
        self.tick = tick
        self._late = late
        self.due: dict[K, float] = {}
        """Each armed key's deadline (``loop.time()``). Disarming is ``due.pop(key, None)``
        and ``key in due`` says whether it is armed: a dict operation where a method call
        would cost more, on paths run for every request."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the sweeping task runs on; None while none runs."""
        self._task: asyncio.Task[None] | None = None

    def arm(self, key: K, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """``key`` is late ``seconds`` from now, unless disarmed before."""
        self.due[key] = loop.time() + seconds
        if self._loop is not loop:
            self._loop = loop
            self._task = loop.create_task(self._sweep(loop))

    def disarm(self, key: K) -> None:
        self.due.pop(key, None)

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self.due and self._loop is loop:
                await asyncio.sleep(self.tick)
                now = loop.time()
                for key, due in list(self.due.items()):
                    if due <= now:
                        del self.due[key]
                        self._late(key)
        finally:
            if self._loop is loop:
                self._loop = None
