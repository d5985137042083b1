"""The read API over HTTP (docs/read-api.md): auth, paging, filters, exports, replay, erasure."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from conftest import AUTH, DB, SECRETS
from starlette.testclient import TestClient

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}


def croct(client: TestClient, event: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    r = client.post("/hooks/croct", json=event, headers={**AUTH["croct"]["headers"], **(headers or {})})
    assert r.status_code == 202, r.text
    return r.json()


def page_view(i: int) -> dict[str, Any]:
    return {"type": "pageLoaded", "url": f"https://site.example/p/{i}", "title": f"P{i}"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/events",
        "/v1/events/x",
        "/v1/leads",
        "/v1/leads/x",
        "/v1/leads/x/events",
        "/v1/deliveries",
        "/v1/deliveries/x",
    ],
)
def test_read_api_needs_the_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers={"Authorization": SECRETS["RECEIVER_API_KEY"]}).status_code == 401
    assert client.delete("/v1/leads/x").status_code == 401
    assert client.post("/v1/replay").status_code == 401


def test_paging_every_id_once_newest_first_while_new_events_arrive(client: TestClient) -> None:
    for i in range(250):
        croct(client, page_view(i))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/v1/events", headers=KEY, params=params).json()
        seen += [e["id"] for e in body["data"]]
        pages += 1
        croct(client, page_view(1000 + pages))  # arrives mid-paging: must not shift pages
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 250 and len(set(seen)) == 250
    assert seen == sorted(seen, reverse=True)


def test_filters_source_type_lead_time(client: TestClient) -> None:
    croct(client, page_view(1))
    croct(client, {"type": "goalCompleted", "goalId": "newsletter-sign-up"})
    client.post("/hooks/kartra", json={"lead": {"id": "5"}, "action": "video_play"}, **AUTH["kartra"])
    all_events = client.get("/v1/events", headers=KEY).json()["data"]
    assert len(all_events) == 3
    by_source = client.get("/v1/events", headers=KEY, params={"source": "kartra"}).json()["data"]
    assert [e["type"] for e in by_source] == ["video.played"]
    by_type = client.get("/v1/events", headers=KEY, params={"type": "goal.completed"}).json()["data"]
    assert [e["source_type"] for e in by_type] == ["goalCompleted"]
    middle = all_events[1]["received_at"]
    since = client.get("/v1/events", headers=KEY, params={"since": middle}).json()["data"]
    until = client.get("/v1/events", headers=KEY, params={"until": middle}).json()["data"]
    assert {e["id"] for e in since} | {e["id"] for e in until} == {e["id"] for e in all_events}
    assert all(e["received_at"] >= middle for e in since)
    assert all(e["received_at"] < middle for e in until)
    one = client.get(f"/v1/events/{all_events[0]['id']}", headers=KEY).json()
    assert one == all_events[0]
    assert client.get("/v1/events/nope", headers=KEY).status_code == 404


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-01-01T00:00:00"}, "until"),
        ({"cursor": "!!"}, "cursor"),
        ({"source": "mailchimp"}, "source"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(
    client: TestClient, params: Any, name: str
) -> None:
    r = client.get("/v1/events", headers=KEY, params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["path"] == name


def test_exports_stream_every_match_and_escape_formulas(client: TestClient) -> None:
    for i in range(120):
        croct(client, page_view(i))
    formula = '=HYPERLINK("http://evil.example","x")'
    croct(client, {"type": "eventOccurred", "name": "liked"}, headers={"X-Client-Id": formula})
    nd = client.get("/v1/events", headers={**KEY, "Accept": "application/x-ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    lines = nd.text.splitlines()
    assert len(lines) == 121
    assert len({json.loads(line)["id"] for line in lines}) == 121
    c = client.get("/v1/events", headers={**KEY, "Accept": "text/csv"})
    assert c.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(c.text)))
    assert len(rows) == 121
    [custom] = [r for r in rows if r["type"] == "custom"]
    assert custom["anonymous_id"] == "'" + formula  # escaped: a spreadsheet shows it as text
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell
    filtered = client.get(
        "/v1/events", headers={**KEY, "Accept": "application/x-ndjson"}, params={"type": "custom"}
    )
    assert len(filtered.text.splitlines()) == 1


def test_deliveries_log_with_bodies_and_reasons(client: TestClient) -> None:
    good = croct(client, page_view(1))
    bad = client.post("/hooks/croct", json={"type": "goalCompleted", "goalId": "x"}, **AUTH["croct"])
    assert bad.status_code == 422
    rejected = client.get("/v1/deliveries", headers=KEY, params={"status": "rejected"}).json()["data"]
    assert len(rejected) == 1 and rejected[0]["reasons"][0]["path"] == "/goalId"
    one = client.get(f"/v1/deliveries/{good['delivery_id']}", headers=KEY).json()
    assert json.loads(one["body"])["type"] == "pageLoaded"
    assert "x-app-id" not in one["headers"]
    assert one["events"] == good["events"]
    assert client.get("/v1/deliveries/nope", headers=KEY).status_code == 404


def test_a_page_of_deliveries_lists_each_as_its_record_says(client: TestClient) -> None:
    for i in range(3):
        croct(client, page_view(i))
    client.post("/hooks/croct", json={"type": "goalCompleted", "goalId": "x"}, **AUTH["croct"])
    first = client.get("/v1/deliveries", headers=KEY, params={"limit": 2}).json()
    rest = client.get("/v1/deliveries", headers=KEY, params={"cursor": first["next_cursor"]}).json()
    page = first["data"] + rest["data"]
    assert len(page) == 4 and rest["next_cursor"] is None
    assert [d["id"] for d in page] == sorted((d["id"] for d in page), reverse=True)
    assert {d["status"] for d in page} == {"accepted", "rejected"}
    keys = ["id", "source", "received_at", "method", "path", "content_type", "status"]
    keys += ["idempotency_key", "mapping", "body_format", "reasons"]
    for listed in page:
        assert list(listed) == keys
        record = client.get(f"/v1/deliveries/{listed['id']}", headers=KEY).json()
        assert listed == {k: record[k] for k in keys}


def test_replay_twice_does_not_double(client: TestClient, db: DB) -> None:
    for i in range(3):
        croct(client, page_view(i))
    r = client.post("/hooks/kartra", json={"action": "not_yet_mapped", "lead": {"id": "1"}}, **AUTH["kartra"])
    assert r.json()["status"] == "unmapped"
    first = client.get("/v1/events", headers=KEY).json()["data"]
    assert len(first) == 3
    one = first[0]["delivery_id"]
    again = client.post(f"/v1/deliveries/{one}/replay", headers=KEY).json()
    assert again["status"] == "accepted" and len(again["events"]) == 1
    for _ in range(2):
        out = client.post("/v1/replay", headers=KEY, params={"source": "croct"}).json()
        assert out["replayed"] == 3 and out["events"] == 3
    assert db.count("events") == 3
    assert db.count("deliveries") == 4
    unmapped = client.post("/v1/replay", headers=KEY, params={"status": "unmapped"}).json()
    assert unmapped == {"replayed": 1, "by_status": {"unmapped": 1}, "events": 0}
    assert client.post("/v1/deliveries/nope/replay", headers=KEY).status_code == 404


def test_openapi_describes_every_read_route_with_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    app_routes = {r.path for r in client.app.routes if r.path.startswith("/v1")}  # type: ignore[attr-defined]
    assert app_routes <= set(spec["paths"])
    params = {p["name"] for p in spec["paths"]["/v1/events"]["get"]["parameters"]}
    assert {"source", "type", "lead_id", "since", "until", "limit", "cursor"} <= params
    assert "delete" in spec["paths"]["/v1/leads/{id}"]
