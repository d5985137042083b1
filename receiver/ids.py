"""UUIDv7 identifiers: sortable by creation time, monotonic within one process.

RFC 9562 method 1: the 12-bit ``rand_a`` field is a counter that is incremented
for ids made in the same millisecond, so ids never go backwards even when the
wall clock does not move (or steps back a little).
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """Return a new UUIDv7 as its canonical 36-character lower-case string."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
    value = (ms & 0xFFFFFFFFFFFF) << 80
    value |= 0x7 << 76 | counter << 64
    value |= 0b10 << 62 | int.from_bytes(os.urandom(8), "big") & 0x3FFFFFFFFFFFFFFF
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def id_time_ms(value: str) -> int:
    """The millisecond timestamp embedded in a UUIDv7 string."""
    return int(value.replace("-", "")[:12], 16)
