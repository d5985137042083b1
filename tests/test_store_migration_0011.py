"""Migration 0011_fingerprint_key on a store written before it: every row of every table
is still there, as it was; the fingerprint window answers from the new index, for bodies
stored before it and after, within each delivery's own window, and a fingerprint that
only shares the indexed prefix (or the same one from another source) is never taken for
a duplicate."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from test_store_events_index import batch
from test_store_migration_0010 import dump, migrations_before
from test_writer import request

from receiver.clock import rfc3339_epoch
from receiver.store import sqlite as sqlite_store
from receiver.store.base import WriteRequest, WriteResult

VERSION = 11
FP = "0123abcd" + "e" * 56
SAME_PREFIX = "0123abcd" + "f" * 56  # shares the 8 indexed digits only
SAME_16 = "0123abcd" + "e" * 8 + "0" * 48  # shares 16 digits (the old index's prefix)


def sent(
    fingerprint: str, source: str = "croct", body: bytes = b"{}", ago: float = 0.0, window: int = 600
) -> WriteRequest:
    req = request(body, fingerprint=fingerprint)
    at = rfc3339_epoch(time.time() - ago)
    req.delivery.source = req.events[0].source = source
    req.delivery.received_at = req.events[0].received_at = at
    req.dedup_window_seconds = window
    return req


async def write(store: sqlite_store.SQLiteStore, reqs: list[WriteRequest]) -> list[WriteResult]:
    results = await store.write_batch(reqs)
    assert all(isinstance(r, WriteResult) for r in results), results
    return results  # type: ignore[return-value]


def test_a_store_from_before_the_migration_keeps_its_rows_and_finds_its_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "receiver.db"
    rnd = random.Random(12)
    first = sent(FP)
    old_one = sent(SAME_16, ago=120)  # stored 2 minutes ago

    async def run() -> dict[str, Any]:
        with migrations_before(monkeypatch, VERSION):
            store = sqlite_store.SQLiteStore(path)
            await store.open()
            try:
                for n in (70, 50):
                    await write(store, batch(rnd, n))
                await write(store, [first, old_one])
            finally:
                await store.close()
        conn = sqlite3.connect(path)
        (index,) = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'deliveries_fingerprint'"
        ).fetchone()
        assert "substr(fingerprint, 1, 16)" in index
        conn.close()
        rows = dump(path)
        assert len(rows["deliveries"]) == 122
        # Opened by this version: migrated, every row kept.
        store = sqlite_store.SQLiteStore(path)
        await store.open()
        try:
            assert dump(path) == rows
            out: dict[str, Any] = {}
            # Stored before the migration, found by the new index (in one batch, and
            # inside a batch by what the batch itself wrote).
            out["again"] = await write(
                store, [sent(FP), sent(SAME_PREFIX), sent(SAME_PREFIX), sent(FP, source="kartra")]
            )
            # A 60-second window (a source's own setting) does not reach 2 minutes back;
            # the default one does.
            out["short"] = await write(store, [sent(SAME_16, window=60)])
            out["long"] = await write(store, [sent(SAME_16)])
            return out
        finally:
            await store.close()

    out = asyncio.run(run())
    again = out["again"]
    assert again[0].duplicate and again[0].delivery_id == first.delivery.id
    assert not again[1].duplicate  # the same 8 digits, another fingerprint
    assert again[2].duplicate and again[2].delivery_id == again[1].delivery_id
    assert not again[3].duplicate  # the same fingerprint from another source
    assert not out["short"][0].duplicate
    assert out["long"][0].duplicate and out["long"][0].delivery_id == old_one.delivery.id
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (VERSION,)).fetchall()
    (index,) = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'deliveries_fingerprint'").fetchone()
    assert "substr(fingerprint, 1, 8)" in index and "source" not in index
    # The batch's lookup (store/sqlite.py) and the one-by-one lookup (store/sql.py) both
    # read the index.
    prefetch, args = sqlite_store._values(sqlite_store.BY_FINGERPRINT_SQL, ["croct", FP[:8], ""], 3)
    plans = [
        [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {prefetch}", args)],
        [
            str(r[3])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id, fingerprint FROM deliveries"
                " WHERE substr(fingerprint, 1, 8) = ? AND source = ? AND received_at >= ?"
                " AND status != 'rejected' ORDER BY received_at",
                (FP[:8], "croct", ""),
            )
        ],
    ]
    for plan in plans:
        assert any("deliveries_fingerprint (<expr>=?)" in step for step in plan), plan
        assert not any(step.startswith("SCAN d") or step == "SCAN deliveries" for step in plan), plan
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
