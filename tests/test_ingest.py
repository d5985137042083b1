"""The ingest edge over HTTP: every row of the answers table (docs/webhooks.md), for every source.

After each bad input the server must still answer /healthz, and the raw log must hold
exactly what the contract says (rejected with reasons, or nothing at all).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import msgspec
import pytest
from conftest import AUTH, DB, SECRETS, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app

KARTRA_VISIT = {
    "lead": {"id": "1", "first_name": "Ana", "email": "ana@example.com"},
    "action": "kartra_page_visit",
    "action_details": {"kartra_page": {"kartra_page_id": "7", "kartra_page_name": "Home"}},
}
CONVEAD_FORM = {
    "visitor_uid": "v-1",
    "guest_uid": "g-1",
    "data": json.dumps(
        {"type": "link", "url": "http://shop.example/p", "title": "P", "properties": {"key_page_id": 123}}
    ),
}
CROCT_BEACON = {
    "context": {"tabId": "t-1", "url": "https://site.example/", "timeZone": "UTC"},
    "payload": {"type": "pageOpened", "url": "https://site.example/"},
    "originalTime": 1764028800000,
    "departureTime": 1764028800100,
}
AFFITOR_LEAD = {"customer_code": "cust_42_1", "user_id": "usr_1", "email": "a@example.com"}

#: (source, path, how to send a valid delivery, expected success status)
VALID: list[tuple[str, str, dict[str, Any], int]] = [
    ("kartra", "", {"json": KARTRA_VISIT}, 202),
    ("convead", "", {"data": CONVEAD_FORM}, 202),
    ("convead", "/watch/event", {"data": CONVEAD_FORM}, 200),
    ("croct", "", {"json": CROCT_BEACON}, 202),
    ("croct", "/client/web/track", {"json": CROCT_BEACON}, 200),
    ("affitor", "/api/tracking/lead", {"json": AFFITOR_LEAD}, 200),
]


def post(client: TestClient, source: str, path: str = "", auth: bool = True, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}))
    params = dict(kw.pop("params", {}))
    if auth:
        headers.update(AUTH[source].get("headers", {}))
        params.update(AUTH[source].get("params", {}))
    return client.post(f"/hooks/{source}{path}", headers=headers, params=params, **kw)


def healthy(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


def is_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and "Traceback" not in r.text
    return body


@pytest.mark.parametrize(("source", "path", "send", "status"), VALID)
def test_authentic_delivery_is_stored_and_answered(
    client: TestClient, db: DB, source: str, path: str, send: dict[str, Any], status: int
) -> None:
    r = post(client, source, path, **send)
    assert r.status_code == status, r.text
    [row] = db.deliveries()
    assert row["source"] == source and row["status"] == "accepted"
    events = db.events(row["id"])
    assert len(events) == 1
    if source != "affitor":
        answer = r.json()
        assert answer["delivery_id"] == row["id"]
        assert answer["status"] == "accepted"
        assert answer["events"] == [{"id": events[0]["id"], "type": events[0]["type"]}]
    else:
        assert r.json() == {
            "success": True,
            "message": "Lead tracked successfully",
            "customer_code": "cust_42_1",
        }


def test_unmapped_type_is_kept_for_replay(client: TestClient, db: DB) -> None:
    r = post(client, "kartra", json={**KARTRA_VISIT, "action": "brand_new_action"})
    assert r.status_code == 202
    assert r.json()["status"] == "unmapped"
    [row] = db.deliveries()
    assert row["status"] == "unmapped" and db.count("events") == 0
    assert json.loads(row["body"])["action"] == "brand_new_action"


@pytest.mark.parametrize("header", ["Idempotency-Key", "webhook-id"])
def test_duplicate_by_header(client: TestClient, db: DB, header: str) -> None:
    first = post(client, "croct", json=CROCT_BEACON, headers={header: "abc-1"})
    # Same key, even with another body: the same delivery again.
    again = post(client, "croct", json={**CROCT_BEACON, "originalTime": 1}, headers={header: "abc-1"})
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "delivery_id": first.json()["delivery_id"]}
    assert db.count("deliveries") == 1 and db.count("events") == 1


def test_duplicate_by_identical_body_within_window(client: TestClient, db: DB) -> None:
    first = post(client, "kartra", json=KARTRA_VISIT)
    again = post(client, "kartra", json=KARTRA_VISIT)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "delivery_id": first.json()["delivery_id"]}
    other = post(client, "kartra", json={**KARTRA_VISIT, "action": "video_play"})
    assert other.status_code == 202
    assert db.count("deliveries") == 2


def test_dedup_window_zero_keeps_repeats(data_dir: Any) -> None:
    settings = Settings.from_env(make_env(data_dir, RECEIVER_DEDUP_WINDOW_SECONDS="0"))
    with TestClient(create_app(settings)) as client:
        assert post(client, "croct", json=CROCT_BEACON).status_code == 202
        assert post(client, "croct", json=CROCT_BEACON).status_code == 202
    assert DB(settings.sqlite_path).count("deliveries") == 2  # type: ignore[arg-type]


def test_vendor_paths_answer_200_on_duplicate(client: TestClient) -> None:
    post(client, "convead", "/watch/event", data=CONVEAD_FORM)
    again = post(client, "convead", "/watch/event", data=CONVEAD_FORM)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


@pytest.mark.parametrize(("source", "path", "send", "status"), VALID)
@pytest.mark.parametrize("credential", ["missing", "wrong"])
def test_bad_credential_is_401_and_stores_nothing(
    client: TestClient, db: DB, source: str, path: str, send: dict[str, Any], status: int, credential: str
) -> None:
    kw: dict[str, Any] = dict(send)
    if credential == "wrong":
        wrong = {k: {n: "wrong-" + v for n, v in d.items()} for k, d in AUTH[source].items()}
        kw["headers"] = wrong.get("headers", {})
        kw["params"] = wrong.get("params", {})
    r = post(client, source, path, auth=False, **kw)
    assert r.status_code == 401
    assert db.count("deliveries") == 0
    healthy(client)


@pytest.mark.parametrize(
    ("how", "value"),
    [
        ("query", {"params": {"token": SECRETS["RECEIVER_KARTRA_TOKEN"]}}),
        ("header", {"headers": {"X-Webhook-Token": SECRETS["RECEIVER_KARTRA_TOKEN"]}}),
        ("bearer", {"headers": {"Authorization": f"Bearer {SECRETS['RECEIVER_KARTRA_TOKEN']}"}}),
    ],
)
def test_kartra_credential_locations(client: TestClient, how: str, value: dict[str, Any]) -> None:
    assert post(client, "kartra", auth=False, json=KARTRA_VISIT, **value).status_code == 202


@pytest.mark.parametrize("how", ["form", "query", "header"])
def test_convead_app_key_locations_and_never_stored(client: TestClient, db: DB, how: str) -> None:
    key = SECRETS["RECEIVER_CONVEAD_APP_KEY"]
    data = {**CONVEAD_FORM, "data": json.dumps({**json.loads(CONVEAD_FORM["data"]), "app_key": key})}
    kw: dict[str, Any] = {"data": data}
    if how == "form":
        kw["data"] = {**data, "app_key": key}
    elif how == "query":
        kw["params"] = {"app_key": key}
    else:
        kw["headers"] = {"X-App-Key": key}
    r = post(client, "convead", "/watch/event", auth=False, **kw)
    assert r.status_code == 200, r.text
    assert key.encode() not in db.dump()


def test_convead_query_parameters_carry_the_event(client: TestClient, db: DB) -> None:
    r = post(client, "convead", "/watch/event", params=CONVEAD_FORM)
    assert r.status_code == 200 and r.json()["status"] == "accepted"


def test_credentials_never_stored_in_headers_or_query(client: TestClient, db: DB) -> None:
    post(client, "kartra", json=KARTRA_VISIT, headers={"Cookie": "s=1"})
    post(client, "affitor", "/api/tracking/lead", json=AFFITOR_LEAD)
    post(client, "croct", json=CROCT_BEACON, params={"token": SECRETS["RECEIVER_CROCT_APP_ID"]})
    for row in db.deliveries():
        stored = row["headers"] + row["query"]
        for secret in SECRETS.values():
            assert secret not in stored
        assert "authorization" not in json.loads(row["headers"])
        assert "cookie" not in json.loads(row["headers"])


def test_unknown_source_404(client: TestClient, db: DB) -> None:
    is_problem(client.post("/hooks/mailchimp", json={}), 404)
    is_problem(post(client, "kartra", "/no/such/path", json=KARTRA_VISIT), 404)
    assert db.count("deliveries") == 0


def test_wrong_method_405(client: TestClient, db: DB) -> None:
    r = client.get("/hooks/kartra", params=AUTH["kartra"]["params"])
    is_problem(r, 405)
    assert "POST" in r.headers["allow"]
    assert db.count("deliveries") == 0


BAD_BODIES = [
    ("kartra", "", b'{"lead": {"id": 1,', "application/json"),
    ("croct", "", b'{"payload": [1, 2', "application/json"),
    ("croct", "/client/web/track", b"\xff\xfe{}", "application/json"),
    ("affitor", "/api/tracking/lead", b'{"customer_code": "x", }', "application/json"),
    ("kartra", "", b'{"lead": "\xc3\x28"}', "text/plain"),
    ("kartra", "", b"lead[first_name]=%C3%28&action=kartra_page_visit", "application/x-www-form-urlencoded"),
    ("kartra", "", b"[" * 10_000 + b"]" * 10_000, "application/json"),
    ("croct", "", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"),
]


@pytest.mark.parametrize(("source", "path", "body", "ctype"), BAD_BODIES)
def test_unparseable_body_is_400_and_stored_rejected(
    client: TestClient, db: DB, source: str, path: str, body: bytes, ctype: str
) -> None:
    r = post(client, source, path, content=body, headers={"Content-Type": ctype})
    if source == "affitor":
        assert r.status_code == 400 and r.json()["success"] is False
    else:
        problem = is_problem(r, 400)
        assert problem["errors"], problem
    [row] = db.deliveries()
    assert row["status"] == "rejected"
    assert json.loads(row["reasons"])
    assert db.count("events") == 0
    healthy(client)


def test_convead_data_not_json_is_400_naming_the_field(client: TestClient, db: DB) -> None:
    r = post(client, "convead", data={**CONVEAD_FORM, "data": "{type: link"})
    problem = is_problem(r, 400)
    assert problem["errors"][0]["path"] == "/data"
    [row] = db.deliveries()
    assert row["status"] == "rejected"
    assert SECRETS["RECEIVER_CONVEAD_APP_KEY"].encode() not in (row["body"] or b"")


def test_affitor_missing_ids_is_400_in_affitor_shape(client: TestClient, db: DB) -> None:
    r = post(client, "affitor", "/api/tracking/lead", json={"email": "x@example.com"})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False and "customer_code" in body["error"] and "user_id" in body["error"]
    assert {e["path"] for e in body["errors"]} == {"/customer_code", "/user_id"}
    v1 = post(client, "affitor", "/api/v1/track/lead", json={"email": "x@example.com"})
    assert v1.status_code == 400 and "customer_key" in v1.json()["error"]
    rows = db.deliveries()
    assert [r["status"] for r in rows] == ["rejected", "rejected"]


def test_affitor_bad_token_401_in_affitor_shape(client: TestClient) -> None:
    r = client.post(
        "/hooks/affitor/api/tracking/lead", json=AFFITOR_LEAD, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401 and r.json()["success"] is False


@pytest.mark.parametrize(
    ("source", "path"), [("kartra", ""), ("croct", ""), ("convead", ""), ("affitor", "/api/tracking/lead")]
)
def test_multipart_is_415_and_stores_nothing(client: TestClient, db: DB, source: str, path: str) -> None:
    r = post(client, source, path, files={"f": ("a.json", b"{}", "application/json")})
    assert r.status_code == 415
    assert db.count("deliveries") == 0


def test_kartra_json_with_wrong_content_type_is_parsed(client: TestClient, db: DB) -> None:
    for ctype in ("application/x-www-form-urlencoded", "text/plain", ""):
        r = post(
            client,
            "kartra",
            content=msgspec.json.encode({**KARTRA_VISIT, "n": ctype}),
            headers={"Content-Type": ctype},
        )
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
    assert db.count("events") == 3


def test_body_over_limit_is_413_and_stores_nothing(data_dir: Any) -> None:
    settings = Settings.from_env(make_env(data_dir, RECEIVER_MAX_BODY_BYTES="2048"))
    with TestClient(create_app(settings)) as client:
        big = {**KARTRA_VISIT, "pad": "x" * 4096}
        is_problem(post(client, "kartra", json=big), 413)

        def chunks() -> Any:  # no Content-Length: decided while streaming
            for _ in range(100):
                yield b"x" * 1024

        r = post(client, "kartra", content=chunks(), headers={"Content-Type": "application/json"})
        is_problem(r, 413)
        healthy(client)
    assert DB(settings.sqlite_path).count("deliveries") == 0  # type: ignore[arg-type]


@pytest.mark.sqlite_only
def test_storage_failure_is_503_with_retry_after_and_nothing_acknowledged(data_dir: Any) -> None:
    settings = Settings.from_env(make_env(data_dir, RECEIVER_SQLITE_BUSY_TIMEOUT_MS="50"))
    with TestClient(create_app(settings)) as client:
        assert settings.sqlite_path is not None
        blocker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            r = post(client, "kartra", json=KARTRA_VISIT)
            is_problem(r, 503)
            assert r.headers["retry-after"]
            assert client.get("/readyz").status_code == 503
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert client.get("/readyz").status_code == 200
        again = post(client, "kartra", json=KARTRA_VISIT)
        assert again.status_code == 202  # the failed one was not stored, so no duplicate
    assert DB(settings.sqlite_path).count("deliveries") == 1


def test_croct_client_id(client: TestClient) -> None:
    r = client.get("/hooks/croct/client/web/cid")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert len(r.text) == 32 and int(r.text, 16) >= 0
    given = "0123456789abcdef0123456789abcdef"
    assert client.get("/hooks/croct/client/web/cid", params={"cid": given}).text == given
    assert client.get("/hooks/croct/client/web/cid").text != r.text


def test_croct_batch_array(client: TestClient, db: DB) -> None:
    plain = {"type": "pageLoaded", "url": "https://site.example/", "title": "Home"}
    r = post(client, "croct", json=[CROCT_BEACON, plain])
    assert r.status_code == 202
    assert [e["type"] for e in r.json()["events"]] == ["page.viewed", "page.loaded"]


def test_operations_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    post(client, "kartra", json=KARTRA_VISIT)
    post(client, "kartra", auth=False, json=KARTRA_VISIT)
    metrics = client.get("/metrics").text
    assert 'receiver_deliveries_total{source="kartra",status="accepted"} 1.0' in metrics
    assert 'receiver_deliveries_total{source="kartra",status="unauthorized"} 1.0' in metrics
    assert "receiver_queue_depth" in metrics
    # Both kartra answers are in the latency histogram: cumulative buckets, +Inf the count.
    samples = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("receiver_ingest"))
    assert samples['receiver_ingest_seconds_bucket{le="+Inf",source="kartra"}'] == "2.0"
    assert samples['receiver_ingest_seconds_count{source="kartra"}'] == "2.0"
    buckets = [float(v) for k, v in samples.items() if k.startswith("receiver_ingest_seconds_bucket")]
    assert buckets == sorted(buckets) and len(buckets) == 12
    assert 0 < float(samples['receiver_ingest_seconds_sum{source="kartra"}']) < 30
    spec = client.get("/openapi.json").json()
    for path in (
        "/hooks/kartra",
        "/hooks/convead/watch/event",
        "/hooks/convead/integration/common/webhook",
        "/hooks/croct/client/web/track",
        "/hooks/croct/client/web/cid",
        "/hooks/affitor/api/tracking/lead",
        "/hooks/affitor/api/v1/track/lead",
        "/hooks/affitor/api/v1/track/click",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path


def test_convead_query_values_with_reserved_characters(client: TestClient, db: DB) -> None:
    data = json.dumps(
        {"type": "link", "url": "http://shop.example/p?a=1&utm_source=x+y%20z", "title": "A & B"}
    )
    r = post(client, "convead", "/watch/event", params={**CONVEAD_FORM, "data": data})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    [event] = db.events()
    assert event["context"]["page"]["url"] == "http://shop.example/p?a=1&utm_source=x+y%20z"


def test_convead_order_webhook_form_encoded_without_topic_header(client: TestClient, db: DB) -> None:
    # What older official PHP clients send: http_build_query of the order, no topic header.
    form = (
        "order_id=991&state=paid&revenue=10.50&visitor_uid=v-9&items%5B0%5D%5Bproduct_id%5D=7"
        "&items%5B0%5D%5Bqnt%5D=2&items%5B0%5D%5Bprice%5D=5.25"
        f"&app_key={SECRETS['RECEIVER_CONVEAD_APP_KEY']}"
    )
    r = post(
        client,
        "convead",
        "/integration/common",
        auth=False,
        content=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    [event] = db.events()
    assert event["type"] == "order.updated"
    assert event["properties"]["order"]["id"] == "991"
    assert event["properties"]["order"]["total"] == 10.5
