"""Migration ``writer_indexes`` (SQLite 0007, PostgreSQL 0006) on a store holding data:
an anonymous visitor's events stored before it are still found and given to the person
who signs up after it, through the rebuilt partial index."""

from __future__ import annotations

import json

from conftest import AUTH, DB
from starlette.testclient import TestClient

from receiver import Settings, create_app

ADOPT = "SELECT data, occurred_at FROM events WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL"


def convead(client: TestClient, page: str, **fields: str) -> None:
    data = {"type": "link", "url": f"http://shop.example/{page}", "properties": {}}
    r = client.post("/hooks/convead", data={**fields, "data": json.dumps(data)}, **AUTH["convead"])
    assert r.status_code == 202, r.text


def test_a_store_from_before_the_migration_adopts_its_anonymous_events(settings: Settings, db: DB) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        convead(client, "a", guest_uid="g-1")
        convead(client, "b", guest_uid="g-1")
        convead(client, "c", guest_uid="g-2", visitor_uid="v-2")  # came with its lead
    version = 7 if db.backend == "sqlite" else 6
    assert db.rows("SELECT version FROM schema_migrations WHERE version = ?", version)
    for sql in (  # back to the schema before it
        "DROP INDEX events_anonymous",
        "CREATE INDEX events_anonymous ON events (source, anonymous_id) WHERE anonymous_id IS NOT NULL",
        f"DELETE FROM schema_migrations WHERE version = {version}",
    ):
        db.execute(sql)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        convead(client, "d", guest_uid="g-1", visitor_uid="v-1")  # the guest signs up
    assert db.rows("SELECT version FROM schema_migrations WHERE version = ?", version)
    events = db.rows("SELECT anonymous_id, lead_id FROM events ORDER BY id")
    assert [e["anonymous_id"] for e in events] == ["g-1", "g-1", "g-2", "g-1"]
    assert all(e["lead_id"] is not None for e in events)
    assert len({e["lead_id"] for e in events if e["anonymous_id"] == "g-1"}) == 1
    if db.backend == "sqlite":
        plan = db.rows("EXPLAIN QUERY PLAN " + ADOPT, "convead", "g-1")
        assert any("USING INDEX events_anonymous (source=? AND anonymous_id=?)" in str(p) for p in plan)
