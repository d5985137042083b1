"""The garbage collector's settings for a serving process.

With CPython's defaults a collection starts every 700 container objects allocated and
not yet freed. Under load, the documents of the deliveries in flight (64 connections'
worth) cross that all the time, so the collector kept rescanning live requests: about a
sixth of the event loop's CPU per delivery in ``bench/ingest_cpu.py``. And every full
collection walked everything start-up made (modules, compiled mappings), which lives as
long as the process.

So, once the app is built: what exists is frozen out of the collector's sight
(``gc.freeze``), and a young collection waits for ``YOUNG_THRESHOLD`` objects. Memory
held by reference cycles is still bounded (a collection still comes after that many
surviving objects); a delivery's objects are freed by reference counting as before.
"""

from __future__ import annotations

import gc

#: Container objects allocated (net of those freed) before a young collection.
YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Call once, after start-up, before serving."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
