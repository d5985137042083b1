"""Forwarding across real processes: kill -9 with messages pending, several receivers on
one PostgreSQL, ``receiver forward``; and replays at the store's write path."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from conftest import AUTH, DB, ROOT, SECRETS, Server, make_env
from sink import SECRET, Sink, destination, destinations_yaml
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.app import make_store
from receiver.clock import now_rfc3339
from receiver.events import Event
from receiver.forward import Forwarding
from receiver.forward.config import Destination
from receiver.ids import new_id
from receiver.store.base import Delivery, WriteRequest
from receiver.writer import Writer

CROCT = {"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]}


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


def with_destination(env: dict[str, str], tmp_path: Path, sink: Sink) -> dict[str, str]:
    path = tmp_path / "destinations.yaml"
    path.write_text(destinations_yaml(destination("crm", sink.url("/crm"))))
    return {**env, "RECEIVER_DESTINATIONS_FILE": str(path), "SINK_SECRET": SECRET}


def post_all(url: str, n: int, tag: str) -> list[str]:
    """Post ``n`` deliveries; the ids of the events of those acknowledged."""

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:

            async def one(i: int) -> list[str]:
                body = {"type": "pageLoaded", "url": f"https://shop.example/{tag}/{i}"}
                r = await c.post("/hooks/croct", json=body, headers=CROCT)
                return [e["id"] for e in r.json()["events"]] if r.status_code == 202 else []

            return [e for ids in await asyncio.gather(*(one(i) for i in range(n))) for e in ids]

    return asyncio.run(run())


def test_kill_9_with_messages_pending_then_every_message_is_delivered(
    tmp_path: Path, data_dir: Path, env: dict[str, str], sink: Sink
) -> None:
    sink.always["/crm"] = 503  # the destination is failing while the receiver dies
    env = with_destination(env, tmp_path, sink)
    first = Server(data_dir, env=env).start()
    try:
        acknowledged = post_all(first.url, 40, "a")
        assert len(acknowledged) == 40
        time.sleep(0.5)  # attempts are under way
    finally:
        first.stop(kill=True)
    assert sink.received  # it was trying
    sink.always["/crm"] = 204
    second = Server(data_dir, env=env).start()
    try:
        got = sink.wait("/crm", 40, timeout=40)
    finally:
        second.stop()
    arrived: dict[str, set[str]] = {}
    for r in sink.on("/crm"):
        assert r.verified
        arrived.setdefault(r.json()["id"], set()).add(r.id)
    assert set(acknowledged) <= {r.json()["id"] for r in got}
    assert all(len(ids) == 1 for ids in arrived.values())  # retries and resends keep the webhook-id


@pytest.mark.postgres_only
def test_two_receivers_share_the_outbox_and_send_each_message_once(
    tmp_path: Path, database_url: str, sink: Sink, db: DB
) -> None:
    servers = []
    for name in ("a", "b"):
        env = with_destination(make_env(tmp_path / name, RECEIVER_DATABASE_URL=database_url), tmp_path, sink)
        servers.append(Server(tmp_path / name, env=env).start())
    try:
        events = post_all(servers[0].url, 100, "a") + post_all(servers[1].url, 100, "b")
        got = sink.wait("/crm", 200, timeout=30)
        time.sleep(1.5)  # a second copy, if any, would arrive meanwhile
    finally:
        for s in servers:
            s.stop()
    assert len(events) == 200
    assert sorted(r.json()["id"] for r in sink.on("/crm")) == sorted(events)  # each exactly once
    assert len(got) == 200
    assert db.rows("SELECT count(*) AS n FROM messages WHERE state = 'delivered'")[0]["n"] == 200


def test_forward_command_sends_a_period_again(tmp_path: Path, data_dir: Path, sink: Sink) -> None:
    env = make_env(data_dir)
    with TestClient(create_app(Settings.from_env(env))) as client:
        client.post(
            "/hooks/croct", json={"type": "pageLoaded", "url": "https://s.example/old"}, **AUTH["croct"]
        )
        time.sleep(0.01)
        since = now_rfc3339()
        for i in range(5):
            r = client.post(
                "/hooks/croct", json={"type": "pageLoaded", "url": f"https://s.example/{i}"}, **AUTH["croct"]
            )
            assert r.status_code == 202
    env = with_destination(env, tmp_path, sink)
    out = subprocess.run(
        [sys.executable, "-m", "receiver", "forward", "--since", since, "--destination", "crm", "--progress"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "forwarded 5 events to crm: delivered=5 waiting=0 failed=0" in out.stdout
    assert sorted(r.json()["properties"]["page"]["url"] for r in sink.on("/crm")) == [
        f"https://s.example/{i}" for i in range(5)
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "receiver", "forward", "--since", "yesterday", "--destination", "crm"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr


def _request(delivery_id: str, event_id: str, title: str, replace: bool) -> WriteRequest:
    now = now_rfc3339()
    delivery = Delivery(
        id=delivery_id, source="croct", received_at=now, method="POST", path="/",
        content_type="application/json", query={}, headers={}, body=b"{}", body_format="original",
        status="accepted", fingerprint=new_id(),
    )  # fmt: skip
    event = Event(
        id=event_id, source="croct", source_type="pageLoaded", type="page.loaded",
        occurred_at="2026-01-01T00:00:00.000Z", received_at="2026-01-01T00:00:00.000Z", lead_id=None,
        anonymous_id=None, lead=None, properties={"page": {"title": title}}, context={}, extra={},
        delivery_id=delivery_id, mapping="croct@1",
    )  # fmt: skip
    return WriteRequest(delivery=delivery, events=[event], identities=[[]], replace=replace)


def test_a_replay_sends_changed_events_only(settings: Settings, db: DB) -> None:
    d = Destination(
        name="crm", url="http://127.0.0.1:9/", secret=b"k" * 24, format="canonical", sources=None, types=None,
        max_age=60, timeout=1, allow_private=True, concurrency=1, retry_first=1, retry_max=1,
    )  # fmt: skip

    async def run() -> None:
        store = make_store(settings)
        await store.open()
        forwarding = Forwarding.build([d], store)
        writer = Writer(store, route=forwarding.router.route)
        await writer.start()
        try:
            delivery_id, event_id = new_id(), new_id()
            await writer.submit(_request(delivery_id, event_id, "first", replace=False))
            await writer.submit(_request(delivery_id, event_id, "first", replace=True))  # the same again
            await writer.submit(_request(delivery_id, event_id, "second", replace=True))  # changed
        finally:
            await writer.stop()
            await store.close()

    asyncio.run(run())
    rows = db.rows("SELECT id, body FROM messages ORDER BY id")
    assert [msgspec.json.decode(r["body"])["properties"]["page"]["title"] for r in rows] == [
        "first",
        "second",
    ]
    assert rows[0]["id"] != rows[1]["id"]  # a new message for the new version
