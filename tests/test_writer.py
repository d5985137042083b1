"""The group-commit writer's failure paths, on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from conftest import DB, SECRETS, Server, make_env

from receiver import Settings
from receiver.clock import now_rfc3339, rfc3339_epoch
from receiver.events import Event, Identity
from receiver.ids import new_id
from receiver.service import make_store
from receiver.store.base import Delivery, StorageError, WriteRequest, WriteResult
from receiver.store.sqlite import SQLiteStore
from receiver.writer import Overloaded, Writer


def request(body: bytes = b"{}", fingerprint: str | None = None, email: str | None = None) -> WriteRequest:
    did = new_id()
    now = now_rfc3339()
    delivery = Delivery(
        id=did,
        source="croct",
        received_at=now,
        method="POST",
        path="/",
        content_type="application/json",
        query={},
        headers={},
        body=body,
        body_format="original",
        status="accepted",
        fingerprint=fingerprint or new_id(),
    )
    event = Event(
        id=new_id(),
        source="croct",
        source_type="leadGenerated",
        type="lead.captured",
        occurred_at=now,
        received_at=now,
        lead_id=None,
        anonymous_id=None,
        lead={"email": email} if email else None,
        properties={},
        context={},
        extra={},
        delivery_id=did,
        mapping="croct@1",
    )
    idents = [Identity("email_sha256", email, True)] if email else []
    return WriteRequest(delivery=delivery, events=[event], identities=[idents])


async def with_writer(path: Path, fn: object, queue_size: int = 100) -> None:
    store = SQLiteStore(path, busy_timeout_ms=300)
    await store.open()
    writer = Writer(store, queue_size=queue_size, batch_max=64)
    await writer.start()
    try:
        await fn(writer)  # type: ignore[operator]
    finally:
        await writer.stop()
        await store.close()


def test_one_bad_delivery_does_not_sink_its_batch(tmp_path: Path) -> None:
    db = tmp_path / "r.db"

    async def run(writer: Writer) -> None:
        first = request()
        await writer.submit(first)
        clash = request()
        clash.delivery.id = first.delivery.id  # primary key taken: this one alone must fail
        batch = [request(), clash, request()]
        results = await asyncio.gather(*(writer.submit(r) for r in batch), return_exceptions=True)
        assert isinstance(results[0], WriteResult) and isinstance(results[2], WriteResult)
        assert isinstance(results[1], sqlite3.IntegrityError)

    asyncio.run(with_writer(db, run))
    assert DB(db).count("deliveries") == 3
    assert DB(db).count("events") == 3


def test_a_delivery_failing_in_its_batch_is_logged_by_id_without_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def run(writer: Writer) -> None:
        first = request(b'{"email": "marker@example.com"}')
        await writer.submit(first)
        clash = request(b'{"email": "marker@example.com"}')
        clash.delivery.id = first.delivery.id
        with pytest.raises(sqlite3.IntegrityError):
            await writer.submit(clash)

    with caplog.at_level(logging.DEBUG, logger="receiver.writer"):
        asyncio.run(with_writer(tmp_path / "r.db", run))
    [record] = [r for r in caplog.records if r.name == "receiver.writer"]
    message = record.getMessage()
    assert record.levelno == logging.ERROR
    assert "IntegrityError" in message and "File " in message
    # The id of the failed delivery, never its contents nor the driver's message (which
    # can quote values, as PostgreSQL's "Key (…)=(…) already exists" does).
    assert f"delivery {record.args[0]} not stored" in message  # type: ignore[index]
    assert "marker@example.com" not in message and "UNIQUE" not in message


def test_dedup_and_identity_inside_one_batch(tmp_path: Path) -> None:
    db = tmp_path / "r.db"

    async def run(writer: Writer) -> None:
        same = [request(b"same", fingerprint="fp-1") for _ in range(3)]
        people = [request(email="one@example.com") for _ in range(4)]
        results = await asyncio.gather(*(writer.submit(r) for r in same + people))
        assert [r.duplicate for r in results[:3]] == [False, True, True]
        assert {r.delivery_id for r in results[:3]} == {same[0].delivery.id}

    asyncio.run(with_writer(db, run))
    d = DB(db)
    assert d.count("deliveries") == 5
    assert d.count("leads") == 1
    leads = d.rows("SELECT DISTINCT lead_id FROM events WHERE lead_id IS NOT NULL")
    assert len(leads) == 1


def test_a_store_from_before_the_fingerprint_prefix_index_still_finds_its_bodies(tmp_path: Path) -> None:
    """Migration 0007 on a store holding deliveries: the fingerprint window answers from
    the rebuilt index, for bodies stored before it and after, and a fingerprint that only
    shares the indexed prefix is not a duplicate."""
    db = tmp_path / "r.db"
    before = request(b"before", fingerprint="a" * 64)

    async def store_one(writer: Writer) -> None:
        assert not (await writer.submit(before)).duplicate

    asyncio.run(with_writer(db, store_one))
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:  # the schema before 0007
        conn.execute("DROP INDEX deliveries_fingerprint")
        conn.execute("CREATE INDEX deliveries_fingerprint ON deliveries (source, fingerprint, received_at)")
        # 0011 (the index made smaller again) follows it.
        conn.execute("DELETE FROM schema_migrations WHERE version IN (7, 11)")

    async def run(writer: Writer) -> None:
        again = await writer.submit(request(b"before", fingerprint="a" * 64))
        assert again.duplicate and again.delivery_id == before.delivery.id
        near = request(b"near", fingerprint="a" * 16 + "b" * 48)
        assert not (await writer.submit(near)).duplicate
        later = await writer.submit(request(b"near", fingerprint="a" * 16 + "b" * 48))
        assert later.duplicate and later.delivery_id == near.delivery.id

    asyncio.run(with_writer(db, run))
    d = DB(db)
    assert len(d.rows("SELECT version FROM schema_migrations WHERE version IN (7, 11)")) == 2
    plan = d.rows(
        "EXPLAIN QUERY PLAN SELECT id, fingerprint FROM deliveries WHERE substr(fingerprint, 1, 8) = ?"
        " AND source = ? AND received_at >= ? AND status != 'rejected' ORDER BY received_at",
        "a" * 8, "croct", "",
    )  # fmt: skip
    assert any("deliveries_fingerprint (<expr>=?)" in str(row) for row in plan)
    assert d.count("deliveries") == 2


def test_full_queue_is_refused_at_once_and_storage_error_fails_the_whole_batch(tmp_path: Path) -> None:
    db = tmp_path / "r.db"

    async def run(writer: Writer) -> None:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            # The writer takes the first and blocks on the lock; the queue holds one more.
            tasks = [asyncio.create_task(writer.submit(request()))]
            await asyncio.sleep(0.05)  # the writer has taken it and waits for the lock
            tasks.append(asyncio.create_task(writer.submit(request())))
            await asyncio.sleep(0.01)  # queued behind it: the queue (size 1) is now full
            try:
                await writer.submit(request())
                raise AssertionError("a full queue must refuse")
            except Overloaded:
                pass
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, StorageError) for r in results), results
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        ok = await writer.submit(request())
        assert not ok.duplicate

    asyncio.run(with_writer(db, run, queue_size=1))
    assert DB(db).count("deliveries") == 1  # nothing of the failed batch, only the last one


def test_full_queue_answers_503_with_retry_after_over_http(data_dir: Path) -> None:
    env = make_env(data_dir, RECEIVER_QUEUE_SIZE="1", RECEIVER_SQLITE_BUSY_TIMEOUT_MS="1500")
    server = Server(data_dir, env=env).start()
    blocker = sqlite3.connect(data_dir / "receiver.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            async def one(i: int) -> httpx.Response:
                return await c.post(
                    "/hooks/croct",
                    json={"type": "pageLoaded", "url": f"https://s/{i}"},
                    headers={"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]},
                )

            return await asyncio.gather(*(one(i) for i in range(6)))

    try:
        responses = asyncio.run(run())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        assert all(r.status_code == 503 for r in responses), [r.status_code for r in responses]
        assert all(r.headers.get("retry-after") for r in responses)
        details = {msgspec.json.decode(r.content)["detail"] for r in responses}
        assert any("queue is full" in d for d in details)
        r = httpx.post(
            f"{server.url}/hooks/croct",
            json={"type": "pageLoaded", "url": "https://s/x"},
            headers={"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]},
        )
        assert r.status_code == 202
    finally:
        server.stop()
    assert DB(data_dir / "receiver.db").count("deliveries") == 1


@pytest.mark.postgres_only
def test_postgres_batch_isolates_a_bad_delivery_and_dedups_inside_a_batch(database_url: str, db: DB) -> None:
    from receiver.store.postgres import PostgresStore

    async def run() -> None:
        store = PostgresStore(database_url)
        await store.open()
        writer = Writer(store, queue_size=100, batch_max=64)
        await writer.start()
        try:
            first = request()
            await writer.submit(first)
            clash = request()
            clash.delivery.id = first.delivery.id
            same = [request(b"same", fingerprint="fp-pg") for _ in range(2)]
            people = [request(email="pg@example.com") for _ in range(3)]
            results = await asyncio.gather(
                *(writer.submit(r) for r in [request(), clash, *same, *people]), return_exceptions=True
            )
            assert isinstance(results[1], Exception) and not isinstance(results[1], StorageError)
            assert [r.duplicate for r in results[2:4]] == [False, True]  # type: ignore[union-attr]
            assert all(isinstance(r, WriteResult) for r in results[4:])
        finally:
            await writer.stop()
            await store.close()

    asyncio.run(run())
    assert db.count("deliveries") == 1 + 1 + 1 + 3
    assert db.count("leads") == 1


@pytest.mark.postgres_only
def test_postgres_unreachable_is_a_storage_error(database_url: str) -> None:
    from receiver.store.postgres import PostgresStore

    async def run() -> None:
        store = PostgresStore(database_url)
        await store.open()
        writer = Writer(store, queue_size=10, batch_max=8)
        await writer.start()
        try:
            await store._p().close()  # the database goes away under the writer
            try:
                await writer.submit(request())
                raise AssertionError("nothing may be acknowledged")
            except StorageError:
                pass
        finally:
            await writer.stop()

    asyncio.run(run())


def _visitor(anonymous: str, email: str | None = None, key: str | None = None) -> WriteRequest:
    """A delivery from a visitor known by an anonymous id, and by an email once they give it."""
    req = request(email=email)
    req.delivery.idempotency_key = key
    req.events[0].anonymous_id = anonymous
    req.identities = [[Identity("croct_client", anonymous, False), *req.identities[0]]]
    return req


def test_a_batch_sees_its_own_rows_as_one_delivery_at_a_time_would(settings: Settings, db: DB) -> None:
    """A batch's rows are written together at its end; what a later delivery of the batch
    depends on must still be seen: an idempotency key, an anonymous id meeting its person,
    a merge of two leads, a lead merged in an earlier batch."""

    async def run() -> None:
        store = make_store(settings)
        await store.open()
        writer = Writer(store, queue_size=100, batch_max=64)
        await writer.start()
        try:
            first = [
                _visitor("v-1"),
                _visitor("v-1", "ana@example.com"),  # adopts the event above, same batch
                request(email="bo@example.com"),
                _visitor("v-2", key="k-1"),
                _visitor("v-2", key="k-1"),  # the same key: a duplicate
            ]
            results = await asyncio.gather(*(writer.submit(r) for r in first))
            assert [r.duplicate for r in results] == [False, False, False, False, True]
            # Ana meets Bo's email: the leads merge; the next delivery for Bo, in the same
            # batch, and one for Bo alone in the next batch, land on the survivor.
            merging = request(email="ana@example.com")
            merging.identities[0].append(Identity("email_sha256", "bo@example.com", True))
            await asyncio.gather(writer.submit(merging), writer.submit(request(email="bo@example.com")))
            await writer.submit(request(email="bo@example.com"))
            # The key claimed in the first batch is found in the store.
            again = await writer.submit(_visitor("v-2", key="k-1"))
            assert again.duplicate and again.delivery_id == results[3].delivery_id
        finally:
            await writer.stop()
            await store.close()

    asyncio.run(run())
    assert db.count("deliveries") == 7
    live = db.rows("SELECT id FROM leads WHERE merged_into IS NULL")
    assert len(live) == 1
    owners = db.rows("SELECT DISTINCT lead_id FROM events WHERE anonymous_id IS NULL OR anonymous_id = 'v-1'")
    assert [r["lead_id"] for r in owners] == [live[0]["id"]]
    assert db.rows("SELECT lead_id FROM identities WHERE value = 'v-1'") == [{"lead_id": live[0]["id"]}]


def test_a_fingerprint_is_a_duplicate_of_the_oldest_delivery_in_its_own_window(settings: Settings) -> None:
    """Several stored deliveries share a fingerprint (stored without dedup); deliveries in
    one batch with different windows each find the oldest one inside their own window."""

    def at(req: WriteRequest, seconds_ago: int) -> WriteRequest:
        t = rfc3339_epoch(time.time() - seconds_ago)
        req.delivery.received_at = req.events[0].received_at = req.events[0].occurred_at = t
        return req

    async def run() -> None:
        store = make_store(settings)
        await store.open()
        writer = Writer(store, queue_size=100, batch_max=64)
        await writer.start()
        try:
            stored = []
            for ago in (300, 100, 50):
                req = at(request(fingerprint="fp-window"), ago)
                req.dedup = False
                stored.append(await writer.submit(req))
            windows = (60, 120, 600, 10)
            batch = []
            for window in windows:
                req = at(request(fingerprint="fp-window"), 0)
                req.dedup_window_seconds = window
                batch.append(req)
            results = await asyncio.gather(*(writer.submit(r) for r in batch))
            first = [r.delivery_id if r.duplicate else None for r in results]
            assert first == [stored[2].delivery_id, stored[1].delivery_id, stored[0].delivery_id, None]
        finally:
            await writer.stop()
            await store.close()

    asyncio.run(run())


def test_a_batch_reads_its_dedup_keys_and_identities_in_one_statement_each(tmp_path: Path) -> None:
    """After a restart (nothing cached), a batch of deliveries naming stored people and
    stored bodies finds them all, with one read per kind for the whole batch, each
    searching its index (SQLiteTransactions.prefetch)."""
    db = tmp_path / "r.db"
    emails = [f"p{i}@example.com" for i in range(5)]
    firsts: list[WriteResult] = []

    async def store_them(writer: Writer) -> None:
        for i, email in enumerate(emails):
            req = request(f"body-{i}".encode(), fingerprint=f"{i:064x}", email=email)
            keyed = request(email=email)
            keyed.delivery.idempotency_key = f"key-{i}"
            firsts.extend(await asyncio.gather(writer.submit(req), writer.submit(keyed)))

    asyncio.run(with_writer(db, store_them))
    leads = {r["value"]: r["lead_id"] for r in DB(db).rows("SELECT value, lead_id FROM identities")}

    async def again(writer: Writer) -> None:
        reads: list[str] = []
        store = writer.store
        assert isinstance(store, SQLiteStore)
        await store._run(store._writer().set_trace_callback, reads.append)
        batch = []
        for i, email in enumerate(emails):
            batch.append(request(f"body-{i}".encode(), fingerprint=f"{i:064x}", email=email))
            keyed = request(email=email)
            keyed.delivery.idempotency_key = f"key-{i}"
            batch.append(keyed)
        batch.append(request(fingerprint="f" * 16 + "0" * 48, email="new@example.com"))  # a prefix alone
        results = await asyncio.gather(*(writer.submit(r) for r in batch))
        await store._run(store._writer().set_trace_callback, None)
        assert [r.delivery_id for r in results[:-1]] == [r.delivery_id for r in firsts]
        assert all(r.duplicate for r in results[:-1]) and not results[-1].duplicate
        selects = [s for s in reads if s.lstrip().startswith(("SELECT", "WITH"))]
        assert len(selects) <= 3, selects  # keys, fingerprints, identities
        conn = store._writer()
        for sql in selects:
            plan = " ".join(str(r) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "SEARCH" in plan and "SCAN d " not in plan and "SCAN i " not in plan, plan

    asyncio.run(with_writer(db, again))
    d = DB(db)
    now = {r["value"]: r["lead_id"] for r in d.rows("SELECT value, lead_id FROM identities")}
    assert now.pop("new@example.com") not in leads.values()
    assert now == leads
    assert d.count("deliveries") == 11
