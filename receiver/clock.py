"""Timestamps as the service writes them: RFC 3339, UTC, milliseconds, ``Z``.

String formatting costs microseconds on small machines, and timestamps written close
together share their second, so the date-time part is cached per second.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from functools import lru_cache


@lru_cache(maxsize=8192)
def _second(sec: int) -> str:
    t = time.gmtime(sec)  # strftime's %Y does not pad years before 1000
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def rfc3339_epoch(seconds: float) -> str:
    sec = math.floor(seconds)
    ms = round((seconds - sec) * 1000)
    if ms == 1000:
        sec, ms = sec + 1, 0
    return f"{_second(sec)}.{ms:03d}Z"


def rfc3339(dt: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with milliseconds (truncated)."""
    return f"{_second(math.floor(dt.timestamp()))}.{dt.microsecond // 1000:03d}Z"


#: ``.mmmZ`` for each millisecond: a list lookup where a format spec costs more.
_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]


def rfc3339_ns(ns: int) -> str:
    """``time.time_ns()`` as RFC 3339 (milliseconds truncated), as ``now_rfc3339`` writes it."""
    sec, ms = divmod(ns // 1_000_000, 1000)
    return _second(sec) + _MILLIS[ms]


def now_rfc3339() -> str:
    t = time.time()
    sec = math.floor(t)
    return f"{_second(sec)}.{int((t - sec) * 1000):03d}Z"
