"""An events export chunk after chunk: where each chunk starts is taken from the last
document of the one before (SQLite reads only the document and the lead of a row), so
small chunks under every kind of filter (one range, a lead, ranges merged per type or
per source) must give every event once, in the order of the pages."""

from __future__ import annotations

import json
from typing import Any

from conftest import AUTH, SECRETS
from starlette.testclient import TestClient

from receiver.store.base import EventQuery

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}


def croct(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/hooks/croct", json=body, headers=AUTH["croct"]["headers"])
    assert r.status_code == 202, r.text


def test_small_chunks_under_every_filter_give_every_event_once_in_page_order(client: TestClient) -> None:
    from receiver.app import service_of

    for i in range(7):
        croct(client, {"type": "eventOccurred", "name": f"e{i}", "clientId": f"c{i % 2}"})
        croct(client, {"type": "userSignedIn", "userId": f"p{i % 3}@example.com", "clientId": f"c{i % 2}",
                       "profile": {"custom": {"n": i}}})  # fmt: skip
    store: Any = service_of(client.app).store
    every = [json.loads(line) for line in client.get(
        "/v1/events", headers={**KEY, "Accept": "application/x-ndjson"}).content.splitlines()]  # fmt: skip
    assert len(every) == 14
    lead = next(e["lead_id"] for e in every if e["lead_id"])
    types = sorted({e["type"] for e in every})
    assert len(types) == 2

    async def exported(q: EventQuery, size: int) -> list[str]:
        ids = []
        async for chunk in store.export_events(q, size):
            assert 0 < len(chunk) <= size
            for data, lead_id in chunk:
                event = json.loads(data)
                ids.append(event["id"])
                assert lead_id == next(e["lead_id"] for e in every if e["id"] == event["id"])
        return ids

    filters = {
        "none": (EventQuery(), {}),
        "source": (EventQuery(source="croct"), {"source": "croct"}),  # a range per type, merged
        "type": (EventQuery(type=types[0]), {"type": types[0]}),  # a range per source, merged
        "lead": (EventQuery(lead_id=lead), {"lead_id": lead}),
        "source and type": (EventQuery(source="croct", type=types[1]), {"source": "croct", "type": types[1]}),
    }
    assert client.portal is not None
    for name, (q, params) in filters.items():
        pages: list[str] = []
        cursor = None
        while True:  # the list API, two events a page
            more = {"cursor": cursor} if cursor else {}
            page = client.get("/v1/events", params={**params, "limit": 2, **more}, headers=KEY).json()
            pages += [e["id"] for e in page["data"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert pages, name
        assert len(set(pages)) == len(pages), name
        for size in (1, 2, 3, 1000):
            assert client.portal.call(exported, q, size) == pages, (name, size)
