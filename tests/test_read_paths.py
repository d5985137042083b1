"""The read paths at work over HTTP: what pages and exports say once leads merge, CSV
cells that need quoting, the order of events, cursors, filtered pages of leads."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from conftest import AUTH, SECRETS
from starlette.testclient import TestClient

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
NDJSON = {**KEY, "Accept": "application/x-ndjson"}
CSV = {**KEY, "Accept": "text/csv"}


def kartra(client: TestClient, lead: dict[str, Any], action: str = "filled_form") -> Any:
    r = client.post(
        "/hooks/kartra",
        json={"lead": lead, "action": action, "action_details": {"form_id": "3", "form_name": "Signup"}},
        **AUTH["kartra"],
    )
    assert r.status_code == 202, r.text
    return r.json()


def affitor(client: TestClient, user: str, email: str) -> None:
    r = client.post(
        "/hooks/affitor/api/tracking/lead",
        **AUTH["affitor"],
        json={"customer_code": f"c-{user}", "user_id": user, "email": email},
    )
    assert r.status_code == 200, r.text


def croct(client: TestClient, event: dict[str, Any], client_id: str | None = None) -> Any:
    headers = {**AUTH["croct"]["headers"], **({"X-Client-Id": client_id} if client_id else {})}
    r = client.post("/hooks/croct", json=event, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def all_pages(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(path, headers=KEY, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        rows += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rows


def test_after_a_merge_every_read_names_the_surviving_lead(client: TestClient) -> None:
    kartra(client, {"id": "1", "email": "first@example.com"})
    affitor(client, "u9", "second@example.com")
    kartra(client, {"id": "1", "email": "second@example.com"}, action="assign_tag")  # one person
    [lead] = client.get("/v1/leads", headers=KEY).json()["data"]
    page = client.get("/v1/events", headers=KEY).json()["data"]
    assert len(page) == 3 and {e["lead_id"] for e in page} == {lead["id"]}
    assert all(client.get(f"/v1/events/{e['id']}", headers=KEY).json() == e for e in page)
    lines = [json.loads(line) for line in client.get("/v1/events", headers=NDJSON).text.splitlines()]
    assert lines == page
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/events", headers=CSV).text)))
    assert [r["lead_id"] for r in rows] == [lead["id"]] * 3
    assert [json.loads(r["lead"]) if r["lead"] else None for r in rows] == [e["lead"] for e in page]
    assert lead["event_count"] == 3 and lead["sources"] == ["affitor", "kartra"]
    [exported] = [json.loads(line) for line in client.get("/v1/leads", headers=NDJSON).text.splitlines()]
    assert exported == lead


def test_csv_cells_that_need_quoting_read_back_as_they_were(client: TestClient) -> None:
    odd = 'a,"quoted"\tvalue'
    kartra(client, {"id": "7", "email": "odd@example.com", "first_name": odd, "company": "x\ny"})
    croct(client, {"type": "eventOccurred", "name": "liked"}, client_id='c,"1"')
    events = [json.loads(line) for line in client.get("/v1/events", headers=NDJSON).text.splitlines()]
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/events", headers=CSV).text, newline="")))
    assert len(rows) == len(events) == 2
    for row, event in zip(rows, events, strict=True):
        assert row["id"] == event["id"] and row["anonymous_id"] == (event["anonymous_id"] or "")
        for column in ("lead", "properties", "context", "extra"):
            assert (json.loads(row[column]) if row[column] else None) == event[column]
    assert rows[0]["anonymous_id"] == 'c,"1"'
    [lead] = client.get("/v1/leads", headers=KEY).json()["data"]
    [row] = list(csv.DictReader(io.StringIO(client.get("/v1/leads", headers=CSV).text, newline="")))
    assert json.loads(row["traits"]) == lead["traits"]
    assert json.loads(row["identities"]) == lead["identities"] and row["event_count"] == "1"


def test_events_are_newest_first_by_received_at_also_after_a_replay(client: TestClient) -> None:
    first = croct(client, {"type": "pageLoaded", "url": "https://site.example/1"})
    for i in range(2, 5):
        croct(client, {"type": "pageLoaded", "url": f"https://site.example/{i}"})
    replayed = client.post(f"/v1/deliveries/{first['delivery_id']}/replay", headers=KEY)
    assert replayed.status_code == 200
    events = all_pages(client, "/v1/events", limit=2)
    assert len(events) == 4
    keys = [(e["received_at"], e["id"]) for e in events]
    assert keys == sorted(keys, reverse=True)
    assert events[-1]["delivery_id"] == first["delivery_id"]  # it arrived first, whatever its id


def test_a_cursor_still_leads_on_when_its_event_was_erased(client: TestClient) -> None:
    for i in range(3):
        croct(client, {"type": "pageLoaded", "url": f"https://site.example/{i}"})
    kartra(client, {"id": "1", "email": "gone@example.com"})
    for i in range(3, 6):
        croct(client, {"type": "pageLoaded", "url": f"https://site.example/{i}"})
    everything = all_pages(client, "/v1/events")
    keep = [e["id"] for e in everything if e["source"] == "croct"]
    # A page that ends on the Kartra event, then that event (its lead) is erased.
    at = next(i for i, e in enumerate(everything) if e["source"] == "kartra")
    page = client.get("/v1/events", headers=KEY, params={"limit": at + 1}).json()
    assert page["data"][-1]["source"] == "kartra"
    assert client.delete(f"/v1/leads/{page['data'][-1]['lead_id']}", headers=KEY).status_code in (
        200,
        202,
        204,
    )
    rest = client.get("/v1/events", headers=KEY, params={"cursor": page["next_cursor"]}).json()["data"]
    seen = [e["id"] for e in page["data"][:-1]] + [e["id"] for e in rest]
    assert set(keep) <= set(seen)  # nothing skipped


def test_filtered_pages_of_leads_give_each_match_once_newest_first(client: TestClient) -> None:
    for i in range(5):
        kartra(client, {"id": str(i), "email": f"k{i}@example.com"})
        affitor(client, f"u{i}", f"a{i}@example.com")
    kartra_leads = all_pages(client, "/v1/leads", source="kartra", limit=2)
    affitor_leads = all_pages(client, "/v1/leads", source="affitor", limit=2)
    assert len(kartra_leads) == len(affitor_leads) == 5
    assert not {lead["id"] for lead in kartra_leads} & {lead["id"] for lead in affitor_leads}
    ids = [lead["id"] for lead in kartra_leads]
    assert ids == sorted(ids, reverse=True)
    middle = sorted(lead["updated_at"] for lead in kartra_leads + affitor_leads)[5]
    recent = all_pages(client, "/v1/leads", updated_since=middle, limit=2)
    assert {lead["id"] for lead in recent} == {
        lead["id"] for lead in kartra_leads + affitor_leads if lead["updated_at"] >= middle
    }


def test_event_csv_columns_follow_the_event_struct() -> None:
    """The CSV line of an event is built from a template in a fixed column order: a field
    added to ``Event`` must be added there too, not silently left out of every export."""
    from receiver.events import Event
    from receiver.read import export

    fields = list(Event.__struct_fields__)
    assert fields == export.EVENT_COLUMNS
    assert list(export._EventCells.__struct_fields__) == fields
