"""``/readyz``: would a write succeed right now?

The store answers with a real write (``Store.ping``: one row rewritten and committed, so a
full or read-only file system fails it). This wraps it so that readiness never hangs and
never costs much: the check is bounded in time, one runs at a time (callers meanwhile share
it), and a success stands for a moment, so a flood of probes costs a few writes a second.
"""

from __future__ import annotations

import asyncio
import time

from .base import StorageError, Store

TIMEOUT_SECONDS = 1.0
FRESH_SECONDS = 0.5


class Readiness:
    def __init__(self, store: Store, timeout: float = TIMEOUT_SECONDS, fresh: float = FRESH_SECONDS) -> None:
        self.store = store
        self.timeout = timeout
        self.fresh = fresh
        self._task: asyncio.Task[Exception | None] | None = None
        self._ok_at = -1.0

    async def check(self) -> None:
        """Return if a write succeeded just now; raise StorageError (with the reason)
        otherwise, or when the store did not answer within ``timeout``."""
        if time.monotonic() - self._ok_at < self.fresh:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._probe(), name="readiness-probe")
        try:
            error = await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        except TimeoutError:
            raise StorageError(f"no write completed within {self.timeout:g} s") from None
        if error is not None:
            # The kind of failure only: a driver's message may name files or tables.
            raise StorageError(f"a write failed ({type(error.__cause__ or error).__name__})") from error

    async def _probe(self) -> Exception | None:
        started = time.monotonic()
        try:
            await self.store.ping()
        except Exception as e:  # any failure means "not ready"; the caller says which
            return e
        self._ok_at = started
        return None
