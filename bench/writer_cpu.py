"""The SQLite writer thread's CPU per delivery, alone: recorded batches written again.

    .venv/bin/python bench/writer_cpu.py record /tmp/batches.bin [--deliveries 22000]
    .venv/bin/python bench/writer_cpu.py replay /tmp/batches.bin [--rounds 5] [--sql "DROP INDEX x"]
    .venv/bin/python bench/writer_cpu.py replay /tmp/batches.bin --profile
    .venv/bin/python bench/writer_cpu.py pages /tmp/batches.bin

``record`` pushes the ingest bench's mix through the app as ``ingest_cpu.py`` does
(concurrency 64, so the batches are the sizes the writer sees under load) and keeps a
copy of every batch the store is handed. ``replay`` writes those batches, in order,
into a new store, on its writer thread, and counts that thread's CPU time per delivery
over the whole run (median of ``rounds`` fresh stores); ``--sql`` runs statements on
the new store first (an index dropped, a pragma: what a variant costs), ``--page-size``
makes the new store with other pages, ``--profile`` prints where a replay's CPU time
goes (cProfile, in the writer thread; its own cost inflates the figures). ``pages``
replays once with no checkpoint and reads the WAL: the pages written per delivery (each
commit appends every page it changed), by the table or index they belong to. The event loop, the
edge and the mapping are out of the picture: only what ``SQLiteStore.write_batch`` costs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

Batches = list[list[Any]]


async def record(path: Path, deliveries: int) -> None:
    import ingest_cpu
    from ingest import SECRETS

    from receiver import app as app_module
    from receiver.config import Settings
    from receiver.store.base import WriteRequest
    from receiver.store.sqlite import SQLiteStore

    kept: list[bytes] = []
    original = SQLiteStore.write_batch

    async def keep(self: SQLiteStore, batch: list[WriteRequest]) -> Any:
        kept.append(msgspec.msgpack.encode(batch))  # before the writer fills in leads
        return await original(self, batch)

    SQLiteStore.write_batch = keep  # type: ignore[method-assign]
    import os

    os.environ.update(SECRETS)
    with tempfile.TemporaryDirectory(prefix="receiver-writer-cpu-") as work:
        os.environ["RECEIVER_DATA_DIR"] = work
        app = app_module.create_app(Settings.from_env())
        async with app.router.lifespan_context(app):
            reqs = ingest_cpu.requests(deliveries, f"rec-{time.time_ns()}")
            statuses = await ingest_cpu.push(app, reqs, 64)
    assert all(200 <= s < 300 for s in statuses)
    path.write_bytes(msgspec.msgpack.encode(kept))
    sizes = [len(msgspec.msgpack.decode(b)) for b in kept]
    print(f"{len(kept)} batches, {sum(sizes)} deliveries, median batch {statistics.median(sizes)}")


def load(path: Path) -> list[list[Any]]:
    from receiver.store.base import WriteRequest

    kept = msgspec.msgpack.decode(path.read_bytes())
    return [msgspec.msgpack.decode(b, type=list[WriteRequest]) for b in kept]


async def replay_once(path: Path, sql: list[str], profile: bool, page_size: int = 0) -> float:
    from receiver.store.sqlite import SQLiteStore

    batches = load(path)
    n = sum(len(b) for b in batches)
    with tempfile.TemporaryDirectory(prefix="receiver-writer-cpu-") as work:
        db = Path(work) / "receiver.db"
        if page_size:  # before the store makes the file (fixed once it has a table)
            conn = sqlite3.connect(db)
            conn.execute(f"PRAGMA page_size={page_size}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.close()
        store = SQLiteStore(db)
        await store.open()
        try:
            for statement in sql:
                await store._run(store._writer().execute, statement)

            def write_all() -> float:
                prof = cProfile.Profile(time.thread_time) if profile else None
                t0 = time.thread_time()
                if prof is not None:
                    prof.enable()
                for batch in batches:
                    for res in store._write_batch_sync(batch):
                        if isinstance(res, Exception):
                            raise res
                if prof is not None:
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)
                return time.thread_time() - t0

            cpu: float = await store._run(write_all)
        finally:
            await store.close()
    return cpu / n * 1e6


async def pages(path: Path, sql: list[str], page_size: int) -> None:
    """WAL frames per delivery, by b-tree: the store's checkpointer is kept from running,
    so the WAL holds every page every commit wrote."""
    from receiver.store import sqlite as sqlite_store

    batches = load(path)
    n = sum(len(b) for b in batches)
    start = sqlite_store.Checkpointer.start
    sqlite_store.Checkpointer.start = lambda self: None  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(prefix="receiver-writer-pages-") as work:
            db = Path(work) / "receiver.db"
            if page_size:
                conn = sqlite3.connect(db)
                conn.execute(f"PRAGMA page_size={page_size}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.close()
            store = sqlite_store.SQLiteStore(db)
            await store.open()
            try:
                for statement in sql:
                    await store._run(store._writer().execute, statement)
                truncate = "PRAGMA wal_checkpoint(TRUNCATE)"  # its row read, so that it ends
                await store._run(lambda: store._writer().execute(truncate).fetchall())

                def write_all() -> None:
                    for batch in batches:
                        for res in store._write_batch_sync(batch):
                            if isinstance(res, Exception):
                                raise res

                await store._run(write_all)
                conn = sqlite3.connect(db)
                owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
                conn.close()
                wal = db.with_name(db.name + "-wal").read_bytes()
            finally:
                await store.close()
    finally:
        sqlite_store.Checkpointer.start = start  # type: ignore[method-assign]
    size = int.from_bytes(wal[8:12], "big")
    by: dict[str, int] = {}
    for at in range(32, len(wal) - 23, 24 + size):  # a 32-byte header, then frames
        name = owner.get(int.from_bytes(wal[at : at + 4], "big"), "?")
        by[name] = by.get(name, 0) + 1
    frames = sum(by.values())
    for name, count in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"{count / n:6.3f}  {name}")
    per = frames / n
    print(f"wal_pages_per_delivery={per:.2f} page_size={size} wal_bytes_per_delivery={per * (size + 24):.0f}")


async def replay(path: Path, rounds: int, sql: list[str], profile: bool, page_size: int) -> None:
    runs = []
    for r in range(rounds):
        us = await replay_once(path, sql, profile, page_size)
        runs.append(us)
        print(f"round {r + 1}: writer {us:6.1f} µs per delivery", flush=True)
    print(f"writer_thread_us={statistics.median(runs):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("record", "replay", "pages"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--deliveries", type=int, default=22000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sql", action="append", default=[], help="run on the new store first")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--page-size", type=int, default=0, help="of a new store (default: the store's)")
    args = parser.parse_args()
    if args.mode == "record":
        asyncio.run(record(args.file, args.deliveries))
    elif args.mode == "pages":
        asyncio.run(pages(args.file, args.sql, args.page_size))
    else:
        asyncio.run(replay(args.file, args.rounds, args.sql, args.profile, args.page_size))


if __name__ == "__main__":
    main()
