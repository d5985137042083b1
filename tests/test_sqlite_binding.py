"""The SQLite store registers identity adapters for ``bytes`` and ``None`` (the sqlite3
module's registry is searched for every such parameter; an empty search raises and
catches an exception each time). Through the app and a real file, what is stored keeps
its SQL type: a body and an event are blobs, an absent key or anonymous id is NULL."""

from __future__ import annotations

import json

import pytest
from conftest import AUTH, DB
from starlette.testclient import TestClient

from receiver import Settings, create_app


@pytest.mark.sqlite_only
def test_bytes_are_blobs_and_none_is_null(settings: Settings, db: DB) -> None:
    data = {"type": "link", "url": "http://shop.example/a", "properties": {}}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.post(
            "/hooks/convead", data={"visitor_uid": "v-1", "data": json.dumps(data)}, **AUTH["convead"]
        )
        assert r.status_code == 202, r.text
    (delivery,) = db.rows("SELECT typeof(body) AS body, typeof(idempotency_key) AS k FROM deliveries")
    assert delivery == {"body": "blob", "k": "null"}
    (event,) = db.rows("SELECT typeof(data) AS data, typeof(anonymous_id) AS a, data AS raw FROM events")
    assert (event["data"], event["a"]) == ("blob", "null")
    assert json.loads(bytes(event["raw"]))["type"]
    (lead,) = db.rows("SELECT typeof(traits) AS t, typeof(merged_into) AS m FROM leads")
    assert lead == {"t": "blob", "m": "null"}
