"""SQLite indexes events by (source, type, received_at, id) but no longer by source or by
type alone (migration 0010_events_by_source_type): a page of one source's events, or of
one type's, is a compound SELECT of one range per type (per source), merged in order.
Every page of events the read API offers still reads indexes in their order, without a
sort, and answers what the rows say, page after page."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_writer import request

from receiver.store import reads
from receiver.store.base import EventQuery, WriteRequest
from receiver.store.sqlite import SQLiteStore

SOURCES = ("croct", "kartra", "convead")
TYPES = ("lead.captured", "page.viewed", "order.placed", "tag.added")
TIMES = [f"2026-01-0{d}T10:00:0{s}.000Z" for d in range(1, 4) for s in range(4)]


def batch(rnd: random.Random, n: int) -> list[WriteRequest]:
    """Deliveries of every source, their events of some of its types (kartra never sends
    tag.added), times shared by several events (ties go by id), some of a known person."""
    out = []
    for i in range(n):
        req = request(email=f"p{i % 7}@example.com" if i % 3 else None)
        source = SOURCES[i % len(SOURCES)]
        req.delivery.source = source
        event = req.events[0]
        event.source = source
        event.type = rnd.choice([t for t in TYPES if (source, t) != ("kartra", "tag.added")])
        event.received_at = rnd.choice(TIMES)
        out.append(req)
    return out


def reference(rows: list[Any], q: EventQuery, after: tuple[str, str] | None) -> list[str]:
    """The ids a page walk should give, newest first, from the rows themselves."""
    keep = [
        r
        for r in rows
        if (not q.source or r[1] == q.source)
        and (not q.type or r[2] == q.type)
        and (not q.lead_id or r[4] == q.lead_id)
        and (not q.since or r[3] >= q.since)
        and (not q.until or r[3] < q.until)
        and (after is None or (r[3], r[0]) < after)
    ]
    return [r[0] for r in sorted(keep, key=lambda r: (r[3], r[0]), reverse=True)]


def queries(lead: str) -> list[EventQuery]:
    out = []
    for source, type_, lead_id, since, until in itertools.product(
        (None, "croct", "kartra", "nobody"),
        (None, "lead.captured", "tag.added", "never.sent"),
        (None, lead),
        (None, TIMES[3]),
        (None, TIMES[9]),
    ):
        out.append(EventQuery(source=source, type=type_, lead_id=lead_id, since=since, until=until))
    return out


def plan_of(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[str]:
    return [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]


def test_every_page_of_events_reads_an_index_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "receiver.db"
    rnd = random.Random(5)

    async def run() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            await store.write_batch(batch(rnd, 90))
            await store.write_batch(batch(rnd, 60))
            conn = sqlite3.connect(path)
            rows = conn.execute("SELECT id, source, type, received_at, lead_id FROM events").fetchall()
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'events'")}
            assert "events_source" not in indexes and "events_type" not in indexes
            lead = next(r[4] for r in rows if r[4] is not None)
            middle = sorted((r[3], r[0]) for r in rows)[len(rows) // 2]
            for q in queries(lead):
                # Walked 7 at a time from the start, the pages give what the rows say.
                walked, cursor = [], None
                while True:
                    page = await store.list_events_json(q, cursor, 7)
                    walked += [event_id for event_id, _ in page]
                    if len(page) < 7:
                        break
                    cursor = page[-1][0]
                assert walked == reference(rows, q, None), q
                # Every statement reads ranges of indexes in their order: no sort.
                query = await store._events_sql(q)
                for after in (None, middle):
                    sql, args = query(after, 1000)
                    if await store._event_arms(q) == []:  # no such source or type
                        assert sql.startswith("SELECT id, received_at, data, lead_id FROM events WHERE 0 ")
                        continue
                    plan = plan_of(conn, sql, args)
                    assert not any("TEMP B-TREE" in p for p in plan), (q, plan)
                    reading = [p for p in plan if p.startswith(("SCAN", "SEARCH"))]
                    assert reading and all("INDEX" in p for p in reading), (q, plan)
                    if (q.source or q.type) and not q.lead_id:
                        assert all("events_source_type" in p for p in reading), (q, plan)
                    if after is not None:
                        got = [r[0] for r in await store._all(sql, args)]
                        assert got == reference(rows, q, after)[:1000], q
            # The ranges of a source are its types, those of a type the sources that have it.
            source = await store._event_arms(EventQuery(source="kartra"))
            assert source == [("type", t) for t in sorted(TYPES) if t != "tag.added"]
            type_ = await store._event_arms(EventQuery(type="tag.added"))
            assert type_ == [("source", "convead"), ("source", "croct")]
            assert await store._event_arms(EventQuery(source="nobody")) == []
            # Found by one seek of that index per value (a skip-scan), without a sort.
            skips = ((reads._TYPES_OF_SOURCE, ["kartra"] * 2), (reads._SOURCES_OF_TYPE, ["tag.added"]))
            for sql, args in skips:
                plan = plan_of(conn, sql, args)
                reading = [p for p in plan if p.startswith(("SCAN", "SEARCH")) and "events" in p]
                assert reading and all("COVERING INDEX events_source_type" in p for p in reading), plan
                assert not any("TEMP B-TREE" in p for p in plan), plan
            # Beyond the most ranges one statement merges, the page is one sorted statement.
            monkeypatch.setattr(reads, "MAX_ARMS", 2)
            q = EventQuery(source="croct")
            assert await store._event_arms(q) is None
            page = await store.list_events_json(q, None, 1000)
            assert [event_id for event_id, _ in page] == reference(rows, q, None)
            conn.close()
        finally:
            await store.close()

    asyncio.run(run())
