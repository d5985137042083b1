"""Migration 0010_events_by_source_type on a store written before it: every row of every
table is still there, as it was, and every page of events, leads and deliveries is the
same page."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_store_events_index import SOURCES, TIMES, TYPES, batch

from receiver.store import sqlite as sqlite_store
from receiver.store.base import DeliveryQuery, EventQuery, LeadQuery
from receiver.store.migrate import migrations

VERSION = 10


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the migrations' own, in a fixed order."""
    conn = sqlite3.connect(path)
    try:
        tables = "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        names = [r[0] for r in conn.execute(tables)]
        return {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in names
            if name != "schema_migrations"
        }
    finally:
        conn.close()


async def pages(store: sqlite_store.SQLiteStore) -> dict[str, list[Any]]:
    """Pages of everything under every filter, walked 9 at a time."""
    out: dict[str, list[Any]] = {}
    lead = next(iter(r["id"] for r in await store.list_leads(LeadQuery(), None, 1)))
    event_queries = [EventQuery(), EventQuery(lead_id=lead), EventQuery(since=TIMES[2], until=TIMES[8])]
    event_queries += [EventQuery(source=s) for s in (*SOURCES, "nobody")]
    event_queries += [EventQuery(type=t) for t in (*TYPES, "never.sent")]
    event_queries += [EventQuery(source=s, type=t, since=TIMES[4]) for s in SOURCES for t in TYPES]
    for q in event_queries:
        walked, cursor = [], None
        while True:
            page = await store.list_events_json(q, cursor, 9)
            walked += page
            if len(page) < 9:
                break
            cursor = page[-1][0]
        out[repr(q)] = walked
    for lq in (LeadQuery(), LeadQuery(source="kartra")):
        out[repr(lq)] = await store.list_leads(lq, None, 1000)
    for dq in (DeliveryQuery(), DeliveryQuery(source="croct"), DeliveryQuery(status="accepted")):
        out[repr(dq)] = await store.list_deliveries(dq, None, 1000)
    return out


@contextlib.contextmanager
def migrations_before(monkeypatch: pytest.MonkeyPatch, version: int) -> Iterator[None]:
    """Inside: a SQLite store is made and upgraded by the migrations before ``version``
    alone, as a store written by an earlier release was."""
    with monkeypatch.context() as m:
        before = [mig for mig in migrations("sqlite") if mig[0] < version]
        m.setattr(sqlite_store, "migrations", lambda backend: before)
        yield


def test_a_store_from_before_the_migration_keeps_its_rows_and_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "receiver.db"
    rnd = random.Random(11)

    async def run() -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        # A store made and written by the migrations before this one.
        with migrations_before(monkeypatch, VERSION):
            store = sqlite_store.SQLiteStore(path)
            await store.open()
            try:
                for n in (70, 50, 40):
                    await store.write_batch(batch(rnd, n))
                old = await pages(store)
            finally:
                await store.close()
        conn = sqlite3.connect(path)
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
        assert {"events_source", "events_type"} <= indexes
        assert not conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (VERSION,)).fetchall()
        conn.close()
        rows = dump(path)
        assert len(rows["events"]) == 160 and rows["identities"] and rows["leads"]
        # Opened by this version: migrated, every row kept, every page the same.
        store = sqlite_store.SQLiteStore(path)
        await store.open()
        try:
            new = await pages(store)
        finally:
            await store.close()
        assert dump(path) == rows
        return old, new

    old, new = asyncio.run(run())
    assert old == new
    assert sum(len(p) for p in old.values()) > 1000
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (VERSION,)).fetchall()
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert not {"events_source", "events_type"} & indexes
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
