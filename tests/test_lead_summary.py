"""The per-lead summary (``lead_sources``, and the summary on each lead's row) stays what
the events and identities say, through every path that adds, moves or deletes them:
ingest, several deliveries of one lead in one batch, anonymous ids met later, merges,
replays, erasure; and a store from before it gets it filled in by its migration. Over
HTTP, on both backends."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
from conftest import AUTH, DB, SECRETS
from starlette.testclient import TestClient
from test_writer import request

from receiver import Settings, create_app
from receiver.config import shipped_mappings_dir
from receiver.events import Identity
from receiver.service import make_store
from receiver.store.base import WriteRequest
from receiver.writer import Writer

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
SUMMARY = "SELECT lead_id, source, events, first_seen_at, last_seen_at FROM lead_sources"
FROM_EVENTS = (
    "SELECT lead_id, source, count(*) AS events, min(occurred_at) AS first_seen_at,"
    " max(occurred_at) AS last_seen_at FROM events WHERE lead_id IS NOT NULL GROUP BY lead_id, source"
)


def kartra(client: TestClient, lead: dict[str, Any], action: str = "filled_form", form: str = "Sign") -> Any:
    r = client.post(
        "/hooks/kartra",
        json={"lead": lead, "action": action, "action_details": {"form_id": "3", "form_name": form}},
        **AUTH["kartra"],
    )
    assert r.status_code == 202, r.text
    return r.json()


def croct(client: TestClient, email: str) -> None:
    r = client.post("/hooks/croct", json={"type": "leadGenerated", "lead": {"email": email}}, **AUTH["croct"])
    assert r.status_code == 202, r.text


def convead(client: TestClient, page: str, **fields: str) -> None:
    data = {"type": "link", "url": f"http://shop.example/{page}", "properties": {}}
    r = client.post("/hooks/convead", data={**fields, "data": json.dumps(data)}, **AUTH["convead"])
    assert r.status_code == 202, r.text


def rows(db: DB, sql: str) -> list[tuple[Any, ...]]:
    return sorted((r["lead_id"], r["source"], int(r["events"]), r["first_seen_at"], r["last_seen_at"])
                  for r in db.rows(sql))  # fmt: skip


def summary_from_events(db: DB) -> list[tuple[Any, ...]]:
    """What ``lead_sources`` must hold: per lead, a row per source of its events (their
    count, first and last occurred_at) or of its identities only (0, no times)."""
    out = {(r[0], r[1]): r for r in rows(db, FROM_EVENTS)}
    for r in db.rows("SELECT DISTINCT lead_id, source FROM identities WHERE lead_id IS NOT NULL"):
        out.setdefault((r["lead_id"], r["source"]), (r["lead_id"], r["source"], 0, None, None))
    return sorted(out.values())


def leads_from_events(db: DB) -> dict[str, dict[str, Any]]:
    """Every live lead's counts as the read API gave them before the summary: aggregated
    from its events (created_at/updated_at when it has none) and its identities."""
    out = {}
    for lead in db.rows("SELECT id, created_at, updated_at FROM leads WHERE merged_into IS NULL"):
        events = db.rows("SELECT source, occurred_at FROM events WHERE lead_id = ?", lead["id"])
        idents = db.rows(
            "SELECT source, kind, value FROM identities WHERE lead_id = ? ORDER BY first_seen_at, kind",
            lead["id"],
        )
        times = [e["occurred_at"] for e in events]
        out[lead["id"]] = {
            "event_count": len(events),
            "first_seen_at": min(times, default=lead["created_at"]),
            "last_seen_at": max(times, default=lead["updated_at"]),
            "sources": sorted({e["source"] for e in events} | {i["source"] for i in idents}),
            "identities": idents,
        }
    return out


def counts(lead: dict[str, Any]) -> dict[str, Any]:
    return {k: lead[k] for k in ("event_count", "first_seen_at", "last_seen_at", "sources", "identities")}


def check(client: TestClient, db: DB) -> dict[str, dict[str, Any]]:
    """The summary equals the aggregate of the events, and every way of reading a lead
    (a page, one lead, the export, the source filter) answers what the events say."""
    assert rows(db, SUMMARY) == summary_from_events(db)
    want = leads_from_events(db)
    page = client.get("/v1/leads", headers=KEY, params={"limit": 1000}).json()["data"]
    assert {lead["id"]: counts(lead) for lead in page} == want
    for lead_id, expected in want.items():
        assert counts(client.get(f"/v1/leads/{lead_id}", headers=KEY).json()) == expected
    export = client.get("/v1/leads", headers={**KEY, "Accept": "application/x-ndjson"}).text.splitlines()
    assert {lead["id"]: counts(lead) for lead in map(json.loads, export)} == want
    # The JSON the database writes (identities, sources) is as compact as msgspec's.
    assert all(line.encode() == msgspec.json.encode(json.loads(line)) for line in export)
    for source in ("kartra", "croct", "convead", "affitor"):
        found = client.get("/v1/leads", headers=KEY, params={"source": source, "limit": 1000}).json()["data"]
        assert {lead["id"] for lead in found} == {i for i, lead in want.items() if source in lead["sources"]}
    return want


def lead_of(client: TestClient, email: str) -> str:
    found = client.get("/v1/leads", headers=KEY, params={"email": email}).json()["data"]
    assert len(found) == 1
    lead_id: str = found[0]["id"]
    return lead_id


def test_the_summary_follows_every_path_that_moves_events(client: TestClient, db: DB) -> None:
    # New leads, repeat events, a second source for one of them, anonymous events.
    kartra(client, {"id": "1", "email": "ann@example.com"})
    kartra(client, {"id": "1", "email": "ann@example.com"}, action="assign_tag")
    croct(client, "ann@example.com")
    croct(client, "bob@example.com")
    convead(client, "a", guest_uid="g-1")
    convead(client, "b", guest_uid="g-1")
    want = check(client, db)
    assert want[lead_of(client, "ann@example.com")]["event_count"] == 3
    assert db.count("events") == 6 and len(want) == 2

    # The anonymous id meets a person: its earlier events join the lead.
    convead(client, "c", guest_uid="g-1", visitor_uid="v-1")
    want = check(client, db)
    assert sorted(lead["event_count"] for lead in want.values()) == [1, 3, 3]

    # Kartra lead 1 turns up with Bob's email: Ann and Bob are one lead now.
    kartra(client, {"id": "1", "email": "bob@example.com"}, action="assign_tag")
    want = check(client, db)
    survivor = lead_of(client, "bob@example.com")
    assert lead_of(client, "ann@example.com") == survivor
    assert want[survivor]["event_count"] == 5 and want[survivor]["sources"] == ["croct", "kartra"]

    # Replays rewrite the deliveries' events: nothing is counted twice.
    for source in ("kartra", "croct", "convead"):
        assert client.post("/v1/replay", headers=KEY, params={"source": source}).status_code == 200
        assert check(client, db) == want
    one = db.rows("SELECT id FROM deliveries WHERE source = 'convead' ORDER BY id")[0]["id"]
    assert client.post(f"/v1/deliveries/{one}/replay", headers=KEY).status_code == 200
    assert check(client, db) == want

    # Carol's Kartra delivery names Bob: erasing him (and Ann) takes it, and her event in it.
    # Her Kartra identity stays, so Kartra stays one of her sources, without events.
    croct(client, "carol@example.com")
    kartra(client, {"id": "3", "email": "carol@example.com"}, form="Referred by bob@example.com")
    carol = lead_of(client, "carol@example.com")
    assert check(client, db)[carol]["event_count"] == 2
    assert client.delete(f"/v1/leads/{survivor}", headers=KEY).status_code == 200
    want = check(client, db)
    assert survivor not in want and want[carol]["event_count"] == 1
    assert want[carol]["sources"] == ["croct", "kartra"]
    assert not db.rows("SELECT lead_id FROM lead_sources WHERE lead_id = ?", survivor)


def test_a_store_from_before_the_summary_gets_it_from_its_events(settings: Settings, db: DB) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        kartra(client, {"id": "1", "email": "ann@example.com"})
        kartra(client, {"id": "1", "email": "ann@example.com"}, action="assign_tag")
        croct(client, "ann@example.com")
        croct(client, "bob@example.com")
        convead(client, "a", guest_uid="g-1")
        want = check(client, db)
    # Back to the schema before the migration that made the summary.
    version = 6 if db.backend == "sqlite" else 5
    assert db.rows("SELECT version FROM schema_migrations WHERE version = ?", version)
    for sql in (
        "DROP TABLE lead_sources",
        "CREATE INDEX events_lead_seen ON events (lead_id, source, occurred_at)",
        f"DELETE FROM schema_migrations WHERE version = {version}",
    ):
        db.execute(sql)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert check(client, db) == want
        assert sorted(lead["event_count"] for lead in want.values()) == [1, 3]
        # And it is kept from there on.
        kartra(client, {"id": "1", "email": "ann@example.com"}, form="Newsletter")
        assert sorted(lead["event_count"] for lead in check(client, db).values()) == [1, 4]


def test_replays_after_a_mapping_change_move_first_and_last_seen(
    tmp_path: Path, env: dict[str, str], db: DB
) -> None:
    """A replay under a changed mapping: the replayed events get other times, then none."""
    mappings = tmp_path / "mappings"
    shutil.copytree(shipped_mappings_dir(), mappings)
    settings = Settings.from_env({**env, "RECEIVER_MAPPINGS_DIR": str(mappings)})

    def replay_kartra_under(old: str, new: str) -> dict[str, Any]:
        kartra_yaml = mappings / "kartra.yaml"
        text = kartra_yaml.read_text()
        assert old in text
        kartra_yaml.write_text(text.replace(old, new))
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.post("/v1/replay", headers=KEY, params={"source": "kartra"}).status_code == 200
            return check(client, db)

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for day in (1, 2, 3):
            details = {
                "form_id": "3",
                "transaction_details": {"transaction_date": f"2026-01-0{day} 10:00:00"},
                "later": f"2026-02-0{day} 10:00:00",
            }
            r = client.post(
                "/hooks/kartra",
                json={"lead": {"id": "1", "email": "dee@example.com"}, "action": "filled_form",
                      "action_details": details},
                **AUTH["kartra"],
            )  # fmt: skip
            assert r.status_code == 202, r.text
        croct(client, "dee@example.com")
        dee = lead_of(client, "dee@example.com")
        lead = check(client, db)[dee]
        assert lead["first_seen_at"].startswith("2026-01-01") and lead["event_count"] == 4
    # Its Kartra events now occur a month later: its first and last Kartra events move.
    lead = replay_kartra_under(
        "/action_details/transaction_details/transaction_date]", "/action_details/later]"
    )
    assert lead and lead[dee]["event_count"] == 4
    kartra_first = db.rows("SELECT first_seen_at FROM lead_sources WHERE source = 'kartra'")
    assert [r["first_seen_at"][:10] for r in kartra_first] == ["2026-02-01"]
    # Then form fills are no longer mapped: Kartra stays a source (its identity), no events.
    lead = replay_kartra_under("  filled_form: lead.captured\n", "")
    assert lead[dee]["event_count"] == 1 and lead[dee]["sources"] == ["croct", "kartra"]


def test_one_batch_of_one_lead_from_several_sources_adds_up_once(settings: Settings, db: DB) -> None:
    """Deliveries written together in a batch (one transaction): a known lead from two
    sources at once; then with a new identity, and a new lead seen twice; then known
    leads from known sources only (added to their rows)."""

    def sent(source: str, email: str, phone: str | None = None) -> WriteRequest:
        req = request(email=email)
        req.delivery.source = req.events[0].source = source
        if phone:
            req.identities[0].append(Identity("phone", phone, True))
        return req

    async def batch(group: list[WriteRequest]) -> None:
        store = make_store(settings)
        await store.open()
        writer = Writer(store, queue_size=100, batch_max=64)
        await writer.start()
        try:
            results = await asyncio.gather(*(writer.submit(r) for r in group))
            assert not any(r.duplicate for r in results)
        finally:
            await writer.stop()
            await store.close()

    def written(group: list[WriteRequest]) -> dict[str, dict[str, Any]]:
        asyncio.run(batch(group))
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            return check(client, db)

    written([sent("croct", "ann@example.com")])
    [ann] = written([sent("croct", "ann@example.com"), sent("kartra", "ann@example.com")])
    want = written(
        [
            sent("croct", "ann@example.com", phone="+15550100"),
            sent("croct", "cy@example.com"),
            sent("affitor", "cy@example.com"),
        ]
    )
    [cy] = set(want) - {ann}
    want = written([sent("croct", "ann@example.com"), sent("affitor", "cy@example.com")])
    assert want[ann]["event_count"] == 5 and want[ann]["sources"] == ["croct", "kartra"]
    assert [i["kind"] for i in want[ann]["identities"]] == ["email_sha256", "phone"]
    assert want[cy]["event_count"] == 3 and want[cy]["sources"] == ["affitor", "croct"]


def test_a_store_from_before_the_summary_row_gets_it_from_its_rows(settings: Settings, db: DB) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        kartra(client, {"id": "1", "email": "ann@example.com"})
        croct(client, "ann@example.com")
        croct(client, "bob@example.com")
        convead(client, "a", guest_uid="g-1")
        convead(client, "b", guest_uid="g-1", visitor_uid="v-1")
        want = check(client, db)
    # Back to the schema before the migration that put the summary on the lead's row.
    version = 8 if db.backend == "sqlite" else 7
    assert db.rows("SELECT version FROM schema_migrations WHERE version = ?", version)
    statements = [
        f"ALTER TABLE leads DROP COLUMN {column}"
        for column in ("first_seen_at", "last_seen_at", "event_count", "sources_json", "identities_json")
    ]
    for sql in (*statements, f"DELETE FROM schema_migrations WHERE version = {version}"):
        db.execute(sql)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert check(client, db) == want
        assert sorted(lead["event_count"] for lead in want.values()) == [1, 2, 2]
        # And it is kept from there on.
        kartra(client, {"id": "2", "email": "bob@example.com"})
        assert sorted(lead["event_count"] for lead in check(client, db).values()) == [2, 2, 2]


def test_a_lead_row_does_not_grow_with_its_identities(settings: Settings, db: DB) -> None:
    """A lead may gather any number of identities (a new order or customer code on every
    sale): its row, rewritten on every delivery of the lead, keeps them only while they
    are few, then stays the same size; its record still lists them all, in order."""

    async def deliveries(start: int, n: int) -> None:
        store = make_store(settings)
        await store.open()
        writer = Writer(store, queue_size=100, batch_max=64)
        await writer.start()
        try:
            for i in range(start, start + n):
                req = request(email="ann@example.com")
                req.identities[0].append(Identity("phone", f"+1555010{i:04d}", True))
                await writer.submit(req)
        finally:
            await writer.stop()
            await store.close()

    def row_size() -> int:
        [row] = db.rows("SELECT * FROM leads WHERE merged_into IS NULL")
        return sum(len(str(v)) for k, v in row.items() if k not in ("updated_at", "event_count"))

    def identities() -> list[dict[str, Any]]:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            [lead] = check(client, db).values()  # the row's identities, or the index's
        found: list[dict[str, Any]] = lead["identities"]
        return found

    asyncio.run(deliveries(0, 5))
    few = row_size()
    assert len(identities()) == 6  # the email and 5 phones, from the row
    asyncio.run(deliveries(5, 30))
    many = row_size()
    assert many < few and len(identities()) == 36  # from the index now
    asyncio.run(deliveries(35, 30))
    assert row_size() == many
    assert [i["value"] for i in identities()][-2:] == ["+15550100063", "+15550100064"]
