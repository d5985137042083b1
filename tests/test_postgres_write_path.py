"""PostgreSQL's write path as one process runs it: two batches in flight at once (the
writer writes the next while one commits: ``overlaps_commit``), each taking its locks
and reading what it will look up in one call (migration 0008_prefetch)."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from conftest import DB
from test_writer import request

from receiver.store.postgres import PREFETCH_SQL, PostgresStore, _text_array
from receiver.writer import Writer

PAIRS = 60


async def _write_pairs(url: str) -> list[bool]:
    """Each delivery and its retry, and each new person twice, submitted side by side to
    one writer whose batches hold one delivery each: the two of a pair go to two
    transactions in flight at once."""
    store = PostgresStore(url)
    await store.open()
    assert store.overlaps_commit
    writer = Writer(store, queue_size=10_000, batch_max=1)
    await writer.start()
    try:
        calls = []
        for i in range(PAIRS):
            email = f"person{i}@example.com"
            first = request(email=email)
            # The same delivery (dedup key) again, as the vendor's retry brings it.
            calls += [
                writer.submit(first),
                writer.submit(request(fingerprint=first.delivery.fingerprint, email=email)),
            ]
            # Another delivery of the same new person, not a duplicate.
            calls.append(writer.submit(request(email=f"person{i}@example.com")))
        results = await asyncio.gather(*calls)
    finally:
        await writer.stop()
        await store.close()
    return [r.duplicate for r in results]


@pytest.mark.postgres_only
def test_two_batches_in_flight_still_one_delivery_and_one_lead(database_url: str, db: DB) -> None:
    duplicates = asyncio.run(_write_pairs(database_url))
    assert duplicates.count(True) == PAIRS  # each retry found its first
    assert db.count("deliveries") == 2 * PAIRS
    assert db.count("events") == 2 * PAIRS
    assert db.count("leads") == PAIRS  # each new person once, though seen in two transactions
    assert db.count("identities") == PAIRS
    per_lead = db.rows("SELECT event_count AS n FROM leads")
    assert sorted(r["n"] for r in per_lead) == [2] * PAIRS


@pytest.mark.postgres_only
def test_a_store_from_before_the_prefetch_function_gets_it_and_keeps_its_data(
    database_url: str, db: DB
) -> None:
    asyncio.run(_write_pairs(database_url))
    before = db.rows("SELECT id FROM deliveries ORDER BY id")
    # Back to the schema before migration 0008.
    db.execute("DROP FUNCTION receiver_prefetch")
    db.execute("DELETE FROM schema_migrations WHERE version = 8")
    duplicates = asyncio.run(_write_pairs(database_url))
    assert db.rows("SELECT version FROM schema_migrations WHERE version = 8")
    assert duplicates.count(True) == PAIRS
    after = db.rows("SELECT id FROM deliveries ORDER BY id")
    assert len(after) == 4 * PAIRS and {r["id"] for r in before} <= {r["id"] for r in after}
    # The same people: their leads are found again, not made anew.
    assert db.count("leads") == PAIRS
    assert sorted(r["n"] for r in db.rows("SELECT event_count AS n FROM leads")) == [4] * PAIRS


async def _prefetch_buffers_after_growth(url: str, grow_to: int) -> tuple[int, list[str]]:
    """The shared buffers one prefetch call reads, on a connection that called it often
    while ``deliveries`` was tiny (as a new store's writer does) and again after the table
    grew to ``grow_to`` rows; and the ids it found by fingerprint."""
    store = PostgresStore(url)
    await store.open()  # the schema, migrated
    await store.close()
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema or "public"})
    try:
        insert = (
            "INSERT INTO deliveries (id, source, received_at, method, path, content_type, query,"
            " headers, body, body_format, status, reasons, fingerprint)"
            " SELECT 'd' || lpad(i::text, 8, '0'), 's' || (i % 4), '2026-01-01T00:00:00.000Z', 'POST',"
            " '/', 'application/json', '{}', '{}', convert_to(repeat('x', 600), 'UTF8'), 'json',"
            " 'accepted', '[]', 'fp' || i FROM generate_series($1::int, $2::int) AS i"
        )
        await conn.execute(insert, 1, 20)
        # A batch's worth of keys (with a few, PostgreSQL plans each call anyway), four found.
        numbers = [3, 7, 11, 15, *range(30_001, 30_061)]
        keys = [f"fp{i}" for i in numbers]
        sources = [f"s{i % 4}" for i in numbers]
        n = len(numbers)
        columns = ([], sources, keys, [None] * n, ["2025-01-01T00:00:00.000Z"] * n, [], [])
        args = [_text_array(c) for c in columns]
        for _ in range(12):  # past PL/pgSQL's five custom plans: a generic one is kept
            async with conn.transaction():
                await conn.fetch(PREFETCH_SQL, *args)
        await conn.execute(insert, 21, grow_to)
        async with conn.transaction():
            found = sorted(r["a"] for r in await conn.fetch(PREFETCH_SQL, *args))
            plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + PREFETCH_SQL, *args)
        return int(json.loads(plan)[0]["Plan"]["Shared Hit Blocks"]), found
    finally:
        await conn.close()


@pytest.mark.postgres_only
def test_the_prefetch_finds_fingerprints_by_index_after_the_table_grows(database_url: str) -> None:
    """A store that starts empty must not keep, for good, the plan made for a tiny table
    (a scan of the whole table per batch: migration 0009_write_plans)."""
    hits, found = asyncio.run(_prefetch_buffers_after_growth(database_url, 20_000))
    assert found == ["d00000003", "d00000007", "d00000011", "d00000015"]
    # By index: two or three pages per key (64 keys). The whole table is some 1,800 pages.
    assert hits < 400, hits


async def _seqscan_in_and_after_a_batch(url: str) -> tuple[str, str, str]:
    store = PostgresStore(url)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema or "public"})
    try:
        before = await conn.fetchval("SELECT current_setting('enable_seqscan')")
        async with conn.transaction():
            await conn.fetch(PREFETCH_SQL, *["{}"] * 7)
            during = await conn.fetchval("SELECT current_setting('enable_seqscan')")
        after = await conn.fetchval("SELECT current_setting('enable_seqscan')")
        return before, during, after
    finally:
        await conn.close()


@pytest.mark.postgres_only
def test_a_write_batch_plans_its_statements_without_sequential_scans(database_url: str) -> None:
    """Every statement of a write batch finds its rows by key: after the prefetch (its first
    statement) sequential scans are off, so the plans the batch's statements keep are by
    index even when made while the tables were tiny (a scan of every lead, each batch,
    before migration 0009_write_plans); for that transaction only (SET LOCAL)."""
    assert asyncio.run(_seqscan_in_and_after_a_batch(database_url)) == ("on", "off", "on")
