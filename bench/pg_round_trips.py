"""Round trips to PostgreSQL per write batch, under ``bench/ingest_cpu.py``'s load.

    .venv/bin/python bench/pg_round_trips.py --postgres postgresql://127.0.0.1:5432/test

Runs ``ingest_cpu.py`` (its arguments pass through) with asyncpg's connection calls
counted: each ``execute``/``fetch*`` is one round trip (the statement cache prepares
once), ``executemany`` one, a COPY two (the COPY command, then its data). Prints
``batches=… round_trips_per_batch=… deliveries_per_batch=…`` at the end.
"""

from __future__ import annotations

import atexit
import runpy
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from receiver.store import postgres

counts: Counter[str] = Counter()
micros: Counter[str] = Counter()
"""Wall time waiting for each statement (by its first characters), µs."""


def _counted(name: str, trips: int) -> None:
    original = getattr(asyncpg.Connection, name)

    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not counts["in_batch"]:
            return await original(self, *args, **kwargs)
        counts["trips"] += trips
        counts[name] += trips
        t0 = time.perf_counter()
        try:
            return await original(self, *args, **kwargs)
        finally:
            what = str(args[0])[:40] if args else name
            micros[what] += (time.perf_counter() - t0) * 1e6

    setattr(asyncpg.Connection, name, wrapper)


for _name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
    _counted(_name, 1)
_counted("copy_records_to_table", 2)

_write_batch = postgres.PostgresStore.write_batch


async def _batch(self: Any, batch: list[Any]) -> Any:
    counts["in_batch"] += 1
    counts["batches"] += 1
    counts["deliveries"] += len(batch)
    try:
        return await _write_batch(self, batch)
    finally:
        counts["in_batch"] -= 1


postgres.PostgresStore.write_batch = _batch  # type: ignore[method-assign]


def _report() -> None:
    b = counts["batches"] or 1
    skip = ("batches", "deliveries", "trips", "in_batch")
    detail = " ".join(f"{k}={v / b:.2f}" for k, v in sorted(counts.items()) if k not in skip)
    print(f"per batch: {detail}")
    for what, us in micros.most_common():
        print(f"  {us / max(1, counts['deliveries']):7.1f} µs per delivery waiting for {what!r}")
    print(
        f"batches={counts['batches']} round_trips_per_batch={counts['trips'] / b:.2f}"
        f" deliveries_per_batch={counts['deliveries'] / b:.1f}"
    )


atexit.register(_report)
sys.argv = [str(Path(__file__).with_name("ingest_cpu.py")), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
