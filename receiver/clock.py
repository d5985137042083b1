"""Timestamps as the service writes them: RFC 3339, UTC, milliseconds, ``Z``."""

from __future__ import annotations

import time

_second = -1
_prefix = ""


def now_rfc3339() -> str:
    # strftime costs microseconds; the date-time part changes once a second.
    global _second, _prefix
    t = time.time()
    sec = int(t)
    if sec != _second:
        _prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second = sec
    return f"{_prefix}.{int((t - sec) * 1000):03d}Z"
