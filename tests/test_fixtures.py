"""Vendor payload -> expected canonical events, one fixture file per docs/types.md row.

Each ``tests/fixtures/<source>/*.yaml`` holds a request (as the vendor sends it) and the
events it must produce. The request goes through the real ASGI app onto a real SQLite
file; the stored events are compared field by field with the expectation.
``occurred_at: $received_at`` and ``lead_id: $lead`` (a lead made by identity resolution)
stand for values only known at run time; an optional ``identities:`` list
(``{kind, value, known}``) names what the event must have recorded for that lead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import AUTH, DB
from starlette.testclient import TestClient

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*/*.yaml"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def send(client: TestClient, source: str, req: dict[str, Any]) -> Any:
    """Post a fixture request: ``json`` (encoded as given), ``form`` / ``raw`` (sent as is)."""
    path = req.get("path", "")
    auth = AUTH[source]
    headers = {**auth.get("headers", {}), **req.get("headers", {})}
    params = {**auth.get("params", {}), **req.get("query", {})}
    kwargs: dict[str, Any] = {"headers": headers, "params": params}
    if "json" in req:
        kwargs["content"] = msgspec.json.encode(req["json"])
        headers.setdefault("Content-Type", "application/json")
    elif "form" in req:
        kwargs["content"] = req["form"].encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif "raw" in req:
        kwargs["content"] = req["raw"].encode()
    return client.request(req.get("method", "POST"), f"/hooks/{source}{path}", **kwargs)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f"{p.parent.name}/{p.stem}" for p in FIXTURES])
def test_fixture(fixture: Path, client: TestClient, db: DB) -> None:
    spec = msgspec.yaml.decode(fixture.read_bytes())
    source = fixture.parent.name
    response = send(client, source, spec["request"])
    assert response.status_code == spec.get("status", 202), response.text
    answer = response.json()
    delivery_id = answer.get("delivery_id") or db.deliveries()[-1]["id"]
    events = db.events(delivery_id)
    expected = spec["events"]
    assert len(events) == len(expected), events
    for got, want in zip(events, expected, strict=True):
        assert UUID7.match(got["id"])
        assert got["delivery_id"] == delivery_id
        assert got["source"] == source
        assert RFC3339.match(got["received_at"])
        if want.get("occurred_at") == "$received_at":
            want = {**want, "occurred_at": got["received_at"]}
        if want.get("lead_id") == "$lead":  # some lead, made by identity resolution
            assert got["lead_id"] is not None and UUID7.match(got["lead_id"]), got["lead_id"]
            want = {**want, "lead_id": got["lead_id"]}
        for ident in want.get("identities", []):  # what the event told identity resolution
            rows = db.rows(
                "SELECT lead_id, known FROM identities WHERE kind = ? AND value = ?",
                ident["kind"],
                ident["value"],
            )
            assert rows, f"identity {ident} was not recorded"
            assert rows[0]["known"] == int(ident.get("known", True)), ident
            assert rows[0]["lead_id"] == got["lead_id"], ident
        for key in (
            "source_type",
            "type",
            "occurred_at",
            "lead_id",
            "anonymous_id",
            "lead",
            "properties",
            "context",
            "extra",
            "mapping",
        ):
            assert key in want, f"{fixture.name}: the expectation must state {key}"
            assert got[key] == want[key], f"{key}: {got[key]!r} != {want[key]!r}"
