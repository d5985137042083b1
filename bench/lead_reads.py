"""Reads in-process: server-side cost of pages of 1,000 leads and of the lead exports
(``--events``: of the event exports too).

    .venv/bin/python bench/lead_reads.py --sqlite DIR/receiver.db
    .venv/bin/python bench/lead_reads.py --postgres 'postgresql://127.0.0.1:5432/test?schema=S'

Run it from two checkouts, alternating, on copies of one store (``read_latency.py
--data DIR`` makes one; its PostgreSQL copy is the schema ``read_bench_<dataset>``) to
compare two versions of the read code without HTTP or the noise of a second process.
SQLite: CPU time of this process (the reader thread included), the median of 20 pages
as the API answers them, and export rows per CPU-second, formatting included.
PostgreSQL: wall times instead, as most of the work is PostgreSQL's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from receiver.read.export import FORMATS
from receiver.responses import JSONResponse
from receiver.store.base import EventQuery, LeadQuery
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SQLiteStore

QUERIES = {
    "newest": LeadQuery(),
    "source": LeadQuery(source="kartra"),
    "updated_since": LeadQuery(updated_since="2000-01-01T00:00:00.000Z"),
}


async def measure(
    store: SQLiteStore | PostgresStore, clock: Callable[[], float], pages: int, events: bool = False
) -> str:
    await store.open()
    out = []
    try:
        for name, q in QUERIES.items():
            first = await store.list_lead_records(q, None, 1001)
            cursor = first[-1].id
            took = []
            for i in range(pages):
                t0 = clock()
                rows = await store.list_lead_records(q, cursor if i % 2 else None, 1001)
                JSONResponse({"data": rows[:1000], "next_cursor": None})
                took.append(clock() - t0)
            out.append(f"page {name} {statistics.median(took) * 1000:.1f} ms")
        for fmt in ("ndjson", "csv"):
            t0, n = clock(), 0
            async for piece in FORMATS[("leads", fmt)](store.export_leads(LeadQuery())):
                n += piece.count(b"\n")
            out.append(f"export {fmt} {n / (clock() - t0) / 1000:.0f}k rows/s")
        for fmt in ("ndjson", "csv") if events else ():
            t0, n = clock(), 0
            async for piece in FORMATS[("events", fmt)](store.export_events(EventQuery())):
                n += piece.count(b"\n")
            out.append(f"events {fmt} {n / (clock() - t0) / 1000:.0f}k rows/s")
    finally:
        await store.close()
    return " | ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="FILE", help="a SQLite store (CPU time)")
    where.add_argument("--postgres", metavar="URL", help="a PostgreSQL store (wall time)")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--events", action="store_true", help="the event exports too")
    args = parser.parse_args()
    if args.sqlite:
        store = SQLiteStore(Path(args.sqlite))
        result = asyncio.run(measure(store, time.process_time, args.pages, args.events))
        print("sqlite (cpu):", result)
    else:
        pg_store = PostgresStore(args.postgres)
        result = asyncio.run(measure(pg_store, time.perf_counter, args.pages, args.events))
        print("postgres (wall):", result)


if __name__ == "__main__":
    main()
