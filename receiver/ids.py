"""UUIDv7 identifiers: sortable by creation time, monotonic within one process.

RFC 9562 method 1: the 12-bit ``rand_a`` field is a counter that is incremented
for ids made in the same millisecond, so ids never go backwards even when the
wall clock does not move (or steps back a little).

Events do not draw ids of their own: the n-th event of a delivery is named after the
delivery and n (``event_id``), so mapping the same delivery again, a replay, gives
every event the id it had, and sorting by id still sorts by arrival.
"""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_rand = random.Random(os.urandom(32))  # unpredictability is not needed, uniqueness is
_bits = _rand.getrandbits
_last_ms = 0
_counter = 0
_prefix = ""
"""``xxxxxxxx-xxxx-`` of ``_last_ms``: the ids of one millisecond share it."""
_last: tuple[str, int] = ("", 0)
"""The last id made and its 62 random bits: ``event_id`` of it needs no parsing (the
usual case: the events of a delivery are named right after it)."""


def new_id(now_ns: int | None = None) -> str:
    """Return a new UUIDv7 as its canonical 36-character lower-case string; ``now_ns``:
    the wall clock (``time.time_ns()``) when the caller has read it already."""
    global _last_ms, _counter, _prefix, _last
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _counter = _bits(10)  # leave headroom for the counter
            _prefix = ""
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
                _prefix = ""
            ms = _last_ms
        counter = _counter
        prefix = _prefix
        if not prefix:
            h = (ms & 0xFFFFFFFFFFFF).to_bytes(6, "big").hex()  # C; format specs cost more
            prefix = _prefix = f"{h[:8]}-{h[8:]}-"
        tail = _bits(62)
        # version 7, the counter, variant 0b10, the random bits: 20 hex digits in one go
        h = ((0x7000 | counter) << 64 | 0x8000000000000000 | tail).to_bytes(10, "big").hex()
        value = f"{prefix}{h[:4]}-{h[4:8]}-{h[8:]}"
        _last = (value, tail)
    return value


def id_time_ms(value: str) -> int:
    """The millisecond timestamp embedded in a UUIDv7 string."""
    return int(value.replace("-", "")[:12], 16)


#: Bits of ``rand_b`` that carry an event's position within its delivery; the other 32
#: come from the delivery id's own random bits, which keep two deliveries made in the
#: same millisecond with the same counter (two processes) apart.
POSITION_BITS = 30


def event_id(delivery_id: str, position: int) -> str:
    """The id of the ``position``-th (0-based) event of a delivery: the delivery's
    timestamp and counter, then the position, then the delivery's random bits.

    Deterministic, still a UUIDv7 (its time is the delivery's arrival), and ordered: all
    events of a delivery sort after those of earlier deliveries, before those of later
    ones, and among themselves by position.
    """
    if not 0 <= position < 1 << POSITION_BITS:
        raise ValueError(f"event position out of range: {position}")
    last = _last  # one read: another thread may make an id meanwhile
    if last[0] is not delivery_id:  # any other id (a replay's, say): parsed whole
        value = int(delivery_id.replace("-", ""), 16)
        tail = value & ((1 << 62) - 1)
        value = value >> 62 << 62 | position << (62 - POSITION_BITS) | tail >> POSITION_BITS
        h = value.to_bytes(16, "big").hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    rand_b = 0x8000000000000000 | position << (62 - POSITION_BITS) | last[1] >> POSITION_BITS
    h = rand_b.to_bytes(8, "big").hex()
    return f"{delivery_id[:19]}{h[:4]}-{h[4:]}"
