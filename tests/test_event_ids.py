"""Stable event ids: the n-th event of a delivery always has the same id, so a replay
replaces events under their ids, links keep working, and lists keep their order."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import AUTH, SECRETS
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.ids import event_id, new_id

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}


def post_croct(client: TestClient, body: Any) -> dict[str, Any]:
    r = client.post("/hooks/croct", json=body, **AUTH["croct"])
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


def page(i: int) -> dict[str, Any]:
    return {"type": "pageLoaded", "url": f"https://site.example/p/{i}", "title": f"P{i}"}


def listed(client: TestClient) -> list[tuple[str, str]]:
    return [(e["id"], e["received_at"]) for e in client.get("/v1/events", headers=KEY).json()["data"]]


def test_event_ids_are_derived_from_the_delivery_and_the_position() -> None:
    first, second = new_id(), new_id()
    ids = [event_id(first, n) for n in range(3)] + [event_id(second, n) for n in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 6  # by delivery, then by position
    assert event_id(first, 1) == event_id(first, 1)
    for i in ids:
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert i[:13] == first[:13] or i[:13] == second[:13]  # the delivery's time
    with pytest.raises(ValueError):
        event_id(first, -1)


def test_replay_keeps_every_event_id_and_the_order_of_lists(client: TestClient) -> None:
    batch = post_croct(client, [page(1), page(2), page(3)])
    later = [post_croct(client, page(i)) for i in (4, 5)]
    assert [e["id"] for e in batch["events"]] == [event_id(batch["delivery_id"], n) for n in range(3)]
    before = listed(client)
    assert [i for i, _ in before] == [e["id"] for d in reversed(later) for e in d["events"]] + [
        e["id"] for e in reversed(batch["events"])
    ]
    assert [t for _, t in before] == sorted((t for _, t in before), reverse=True)  # newest first

    again = client.post(f"/v1/deliveries/{batch['delivery_id']}/replay", headers=KEY).json()
    assert again["status"] == "accepted" and again["events"] == batch["events"]
    for e in batch["events"]:
        got = client.get(f"/v1/events/{e['id']}", headers=KEY)
        assert got.status_code == 200 and got.json()["delivery_id"] == batch["delivery_id"]
    assert listed(client) == before  # the replayed delivery did not jump above newer ones

    everything = client.post("/v1/replay", headers=KEY).json()
    assert everything["replayed"] == 3 and everything["events"] == 5
    assert listed(client) == before


@pytest.mark.sqlite_only
def test_events_stored_before_ids_were_derived_keep_their_ids_through_a_replay(
    settings: Settings, backend: str
) -> None:
    with TestClient(create_app(settings)) as client:
        delivery = post_croct(client, [page(1), page(2)])
    # A store written by 0.1: the events got ids of their own, unrelated to the delivery's.
    old_ids = sorted(new_id() for _ in range(2))
    path = settings.sqlite_path
    assert isinstance(path, Path)
    conn = sqlite3.connect(path)
    with conn:
        for e, old in zip(delivery["events"], old_ids, strict=True):
            (data,) = conn.execute("SELECT data FROM events WHERE id = ?", (e["id"],)).fetchone()
            doc = msgspec.json.decode(data)
            doc["id"] = old
            conn.execute(
                "UPDATE events SET id = ?, data = ? WHERE id = ?", (old, msgspec.json.encode(doc), e["id"])
            )
    conn.close()
    with TestClient(create_app(settings)) as client:
        again = client.post(f"/v1/deliveries/{delivery['delivery_id']}/replay", headers=KEY).json()
        assert [e["id"] for e in again["events"]] == old_ids
        for old in old_ids:
            assert client.get(f"/v1/events/{old}", headers=KEY).json()["id"] == old
