"""When to try a message again: exponential backoff with full jitter, and Retry-After.

The n-th retry waits a random time up to ``first * 2**(n-1)``, capped at ``max_interval``
(full jitter: retries of many messages spread out instead of arriving together).
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

_rand = random.Random()


def backoff(failed_attempts: int, first: float, max_interval: float) -> float:
    """Seconds to wait after the ``failed_attempts``-th failure (1 for the first)."""
    bound = min(max_interval, first * 2 ** min(max(failed_attempts - 1, 0), 62))
    return _rand.uniform(0, bound)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
