"""Forwarding to destinations (docs/forwarding.md), through the real app and a real HTTP
destination (tests/sink.py) that verifies every signature with ``standardwebhooks``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AUTH, DB, SECRETS
from sink import SECRET, Sink, destination, destinations_yaml
from starlette.testclient import TestClient

from receiver import Settings, create_app

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
LEAD = {"type": "leadGenerated", "lead": {"email": "ana@example.com", "firstName": "Ana"}}
PAGE = {"type": "pageLoaded", "url": "https://shop.example/p/1", "title": "P1"}


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


def forwarding_app(tmp_path: Path, env: dict[str, str], *destinations: dict[str, Any]) -> TestClient:
    path = tmp_path / "destinations.yaml"
    path.write_text(destinations_yaml(*destinations))
    settings = Settings.from_env({**env, "RECEIVER_DESTINATIONS_FILE": str(path), "SINK_SECRET": SECRET})
    return TestClient(create_app(settings), raise_server_exceptions=False)


def croct(client: TestClient, event: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = client.post("/hooks/croct", json=event, headers={**AUTH["croct"]["headers"], **headers})
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def messages(client: TestClient, **params: str) -> list[dict[str, Any]]:
    r = client.get("/v1/messages", headers=KEY, params=params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_every_event_arrives_signed_in_its_format(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    crm = destination("crm", sink.url("/crm"))
    ce = destination(
        "lake", sink.url("/ce"), format="cloudevents", sources=["croct"], types=["lead.*", "page.*"]
    )
    with forwarding_app(tmp_path, env, crm, ce) as client:
        lead = croct(client, LEAD)["events"][0]
        page = croct(client, PAGE)["events"][0]
        visit = client.post(
            "/hooks/kartra", json={"lead": {"id": "7"}, "action": "video_play"}, **AUTH["kartra"]
        ).json()["events"][0]
        got = sink.wait("/crm", 3)
        ces = sink.wait("/ce", 2)
        for e in (lead, page, visit):
            stored = client.get(f"/v1/events/{e['id']}", headers=KEY).json()
            (r,) = [r for r in got if r.json()["id"] == e["id"]]
            assert r.json() == stored  # the event as GET /v1/events/{id} shows it
            assert r.headers["content-type"] == "application/json"
            (m,) = messages(client, event_id=e["id"], destination="crm")
            assert r.id == m["id"]
        assert {r.json()["data"]["id"] for r in ces} == {lead["id"], page["id"]}  # filters: source, types
        for r in ces:
            body = r.json()
            data = client.get(f"/v1/events/{body['data']['id']}", headers=KEY).json()
            assert r.headers["content-type"] == "application/cloudevents+json"
            assert body["specversion"] == "1.0" and body["id"] == r.id
            assert body["source"] == "/sources/croct"
            assert body["type"] == f"receiver.{data['type']}"
            assert body["time"] == data["occurred_at"]
            assert body["datacontenttype"] == "application/json"
            assert body["data"] == data
            assert body.get("subject") == data["lead_id"]  # only when there is a lead
        assert any("subject" in r.json() for r in ces) and any("subject" not in r.json() for r in ces)
        assert all(r.verified for r in sink.received)
        assert len(sink.received) == 5  # once each
        delivered = wait_for(lambda: len(messages(client, state="delivered")) == 5 and messages(client))
        assert all(m["attempts"][0]["status"] == 204 for m in delivered)


def test_nothing_forwarded_for_rejected_unmapped_duplicate_or_test(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        croct(client, PAGE, **{"Idempotency-Key": "k1"})
        again = client.post(
            "/hooks/croct", json=PAGE, headers={**AUTH["croct"]["headers"], "Idempotency-Key": "k1"}
        )
        assert again.json()["status"] == "duplicate"
        bad = client.post("/hooks/croct", json={"type": "goalCompleted", "goalId": "x"}, **AUTH["croct"])
        assert bad.status_code == 422
        unmapped = client.post(
            "/hooks/kartra", json={"action": "nope", "lead": {"id": "1"}}, **AUTH["kartra"]
        )
        assert unmapped.json()["status"] == "unmapped"
        test = client.post(
            "/hooks/affitor/api/tracking/lead",
            json={"customer_code": "c1", "user_id": "u1", "additional_data": {"test_mode": True}},
            **AUTH["affitor"],
        )
        assert test.status_code == 200
        events = client.get("/v1/events", headers=KEY).json()["data"]
        assert sorted(e["type"] for e in events) == ["lead.test", "page.loaded"]
        sink.wait("/crm", 1)
        time.sleep(0.3)
        assert len(sink.received) == 1
        assert len(messages(client)) == 1


def test_retries_follow_the_schedule_and_honour_retry_after(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    sink.plan("/crm", 500, 502, 500, (429, "1"), 204)
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        event = croct(client, PAGE)["events"][0]
        sink.wait("/crm", 1)
        tries = sink.on("/crm")
        assert [r.answered for r in tries] == [500, 502, 500, (429, "1"), 204]
        assert len({r.id for r in tries}) == 1  # one message, the same webhook-id on every retry
        assert all(r.verified for r in tries)
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        # Full jitter: the n-th retry waits at most first * 2**(n-1) (0.2, 0.4, 0.8 s)...
        for n, gap in enumerate(gaps[:3], start=1):
            assert gap <= 0.2 * 2 ** (n - 1) + 0.3, gaps
        assert gaps[3] >= 0.95, gaps  # ...and not sooner than Retry-After says
        (m,) = wait_for(
            lambda: [m for m in messages(client, event_id=event["id"]) if m["state"] == "delivered"]
        )
        assert [a["status"] for a in m["attempts"]] == [500, 502, 500, 429, 204]
        assert all(a["duration_ms"] >= 0 and a["at"] for a in m["attempts"])


def test_timeouts_and_a_vanished_destination_are_retried(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    sink.hang_seconds = 2.0
    sink.plan("/crm", "hang")
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        first = croct(client, PAGE)["events"][0]
        sink.wait("/crm", 1)  # after the timeout, retried and answered
        sink.stop()  # the destination goes away
        second = croct(client, {**PAGE, "url": "https://shop.example/p/2"})["events"][0]
        m = wait_for(lambda: [m for m in messages(client, event_id=second["id"]) if len(m["attempts"]) >= 2])[
            0
        ]
        assert m["state"] == "pending" and all(a["status"] is None for a in m["attempts"])
        assert all("ConnectError" in a["error"] for a in m["attempts"])
        sink.start()  # back, on the same port
        sink.wait("/crm", 2)
        (hung,) = messages(client, event_id=first["id"])
        assert hung["attempts"][0]["status"] is None
        assert hung["attempts"][0]["error"] == "no answer within 1 s"
        assert hung["attempts"][0]["duration_ms"] >= 900
        assert [r.id for r in sink.on("/crm")].count(hung["id"]) == 2  # the same id both times
        wait_for(lambda: all(m["state"] == "delivered" for m in messages(client)))


def test_max_age_then_failed_and_kept_then_retried_by_the_api(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    sink.always["/crm"] = 500
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"), max_age="1s")) as client:
        one = croct(client, PAGE)["events"][0]
        two = croct(client, {**PAGE, "url": "https://shop.example/p/2"})["events"][0]
        failed = wait_for(
            lambda: len(messages(client, state="failed")) == 2 and messages(client, state="failed")
        )
        assert all(m["reason"] == "max_age reached" and m["attempts"] for m in failed)
        assert all(a["status"] == 500 for m in failed for a in m["attempts"])
        listed = client.get("/v1/destinations", headers=KEY).json()["data"][0]
        assert listed["messages"] == {"pending": 0, "delivered": 0, "failed": 2}
        sink.always["/crm"] = 204
        (m1,) = messages(client, event_id=one["id"])
        r = client.post(f"/v1/messages/{m1['id']}/retry", headers=KEY)
        assert r.status_code == 200 and r.json()["state"] == "pending"
        wait_for(lambda: messages(client, event_id=one["id"])[0]["state"] == "delivered")
        assert client.post(f"/v1/messages/{m1['id']}/retry", headers=KEY).status_code == 409
        r = client.post("/v1/destinations/crm/retry-failed", headers=KEY)
        assert r.json() == {"destination": "crm", "retried": 1}
        wait_for(lambda: messages(client, event_id=two["id"])[0]["state"] == "delivered")
        assert len(sink.wait("/crm", 2)) == 2
        assert client.post("/v1/messages/nope/retry", headers=KEY).status_code == 404
        assert client.post("/v1/destinations/nope/retry-failed", headers=KEY).status_code == 404


def test_gone_disables_the_destination_until_enabled(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    sink.plan("/crm", 410)
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        croct(client, PAGE)
        wait_for(lambda: not client.get("/v1/destinations", headers=KEY).json()["data"][0]["enabled"])
        croct(client, {**PAGE, "url": "https://shop.example/p/2"})
        time.sleep(1.0)
        assert len(sink.received) == 1  # nothing more while disabled
        d = client.get("/v1/destinations", headers=KEY).json()["data"][0]
        assert d["messages"]["pending"] == 2 and "410" in d["disabled_reason"]
        r = client.post("/v1/destinations/crm/enable", headers=KEY)
        assert r.status_code == 200 and r.json()["enabled"] is True
        sink.wait("/crm", 2)
        wait_for(lambda: len(messages(client, state="delivered")) == 2)


def test_a_dead_destination_delays_neither_another_nor_ingest(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    sink.hang_seconds = 5.0
    sink.always["/slow"] = "hang"
    slow = destination("slow", sink.url("/slow"), concurrency=2, timeout="5s")
    with forwarding_app(tmp_path, env, slow, destination("fast", sink.url("/fast"))) as client:
        started = time.monotonic()
        for i in range(30):
            t = time.monotonic()
            croct(client, {**PAGE, "url": f"https://shop.example/p/{i}"})
            assert time.monotonic() - t < 1.0
        sink.wait("/fast", 30, timeout=10)
        assert time.monotonic() - started < 5.0  # before the first slow attempt even timed out
        assert len({r.id for r in sink.on("/slow")}) <= 2  # its concurrency


def test_private_addresses_are_refused_unless_allowed(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    d = destination("crm", f"http://localhost:{sink.port}/crm", allow_private=False)
    with forwarding_app(tmp_path, env, d) as client:
        event = croct(client, PAGE)["events"][0]
        (m,) = wait_for(lambda: [m for m in messages(client, event_id=event["id"]) if m["attempts"]])
        assert "private or loopback" in m["attempts"][0]["error"]
        assert m["state"] == "pending"
        assert sink.received == []


def test_erasure_deletes_undelivered_messages_with_their_bodies(
    tmp_path: Path, env: dict[str, str], sink: Sink, db: DB
) -> None:
    sink.always["/crm"] = 503
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        event = croct(client, {**LEAD, "lead": {"email": "erase.me@example.com"}})["events"][0]
        other = croct(client, PAGE)["events"][0]
        wait_for(lambda: messages(client, event_id=event["id"])[0]["attempts"])
        assert b"erase.me@example.com" in b"".join(
            r["body"] or b"" for r in db.rows("SELECT body FROM messages")
        )
        lead_id = client.get(f"/v1/events/{event['id']}", headers=KEY).json()["lead_id"]
        assert client.delete(f"/v1/leads/{lead_id}", headers=KEY).status_code in (200, 202)
        assert messages(client, event_id=event["id"]) == []
        assert len(messages(client, event_id=other["id"])) == 1  # someone else's stays
        bodies = b"".join(bytes(r["body"] or b"") for r in db.rows("SELECT body FROM messages"))
        assert b"erase.me" not in bodies
        assert b"erase.me" not in db.dump()


def test_read_api_answers_bad_parameters_and_needs_the_key(
    tmp_path: Path, env: dict[str, str], sink: Sink
) -> None:
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        for path in ("/v1/destinations", "/v1/messages"):
            assert client.get(path).status_code == 401
        assert client.post("/v1/destinations/crm/enable").status_code == 401
        for params, name in (
            ({"state": "lost"}, "state"),
            ({"destination": "nope"}, "destination"),
            ({"limit": "0"}, "limit"),
            ({"cursor": "zz"}, "cursor"),
            ({"colour": "red"}, "colour"),
        ):
            r = client.get("/v1/messages", headers=KEY, params=params)
            assert r.status_code == 400, params
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"][0]["path"] == name
        assert client.get("/v1/destinations", headers=KEY, params={"x": "1"}).status_code == 400
        for i in range(5):
            croct(client, {**PAGE, "url": f"https://shop.example/p/{i}"})
        sink.wait("/crm", 5)
        seen, cursor = [], None
        while True:
            page = client.get(
                "/v1/messages", headers=KEY, params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            seen += [m["id"] for m in page.json()["data"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5 and seen == sorted(seen, reverse=True)
        wait_for(lambda: len(messages(client, state="delivered")) == 5)
        metrics = client.get("/metrics").text
        assert 'receiver_forward_attempts_total{destination="crm",outcome="delivered"} 5.0' in metrics
        assert 'receiver_forward_pending_messages{destination="crm"} 0.0' in metrics
        assert 'receiver_forward_oldest_pending_seconds{destination="crm"}' in metrics
        spec = client.get("/openapi.json").json()
        assert {"/v1/destinations", "/v1/messages", "/v1/messages/{id}/retry"} <= set(spec["paths"])


def test_without_destinations_the_api_answers_empty(client: TestClient) -> None:
    assert client.get("/v1/destinations", headers=KEY).json() == {"data": []}
    assert client.get("/v1/messages", headers=KEY).json() == {"data": [], "next_cursor": None}
    assert client.post("/v1/destinations/crm/enable", headers=KEY).status_code == 404
    assert httpx is not None


def test_the_circuit_opens_after_repeated_failures_then_probes(
    tmp_path: Path, env: dict[str, str], sink: Sink
) -> None:
    sink.always["/crm"] = 500
    d = destination("crm", sink.url("/crm"), concurrency=1, retry={"first": "1500ms", "max_interval": "3s"})
    with forwarding_app(tmp_path, env, d) as client:
        for i in range(10):
            croct(client, {**PAGE, "url": f"https://shop.example/p/{i}"})

        def state() -> Any:
            return client.get("/v1/destinations", headers=KEY).json()["data"][0]["circuit"]

        wait_for(lambda: state() == "open", timeout=10)
        tried = len(sink.received)
        assert tried >= 5  # five failures in a row open it
        time.sleep(1.0)
        assert len(sink.received) == tried  # open: nothing is sent
        sink.always["/crm"] = 204
        sink.wait("/crm", 10, timeout=20)  # a probe succeeds, the circuit closes, the rest follows
        assert state() == "closed"


def test_a_replay_that_changes_nothing_sends_nothing_again(
    tmp_path: Path, env: dict[str, str], sink: Sink, backend: str
) -> None:
    with forwarding_app(tmp_path, env, destination("crm", sink.url("/crm"))) as client:
        accepted = croct(client, LEAD)
        sink.wait("/crm", 1)
        again = client.post(f"/v1/deliveries/{accepted['delivery_id']}/replay", headers=KEY)
        assert again.status_code == 200 and again.json()["events"] == accepted["events"]  # same ids
        time.sleep(0.5)
        assert len(sink.received) == 1
        assert len(messages(client)) == 1
