"""``receiver serve`` as a real process: restarts, generated credentials, concurrency, logs."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
from conftest import DB, SECRETS, Server
from test_ingest import CROCT_BEACON, KARTRA_VISIT


def test_restart_keeps_deliveries_and_generated_credentials(data_dir: Path) -> None:
    env = {"RECEIVER_DATA_DIR": str(data_dir)}  # no credentials: all generated
    first = Server(data_dir, env=env).start()
    creds = json.loads((data_dir / "credentials.json").read_text())
    token = creds["RECEIVER_KARTRA_TOKEN"]
    assert oct(os.stat(data_dir / "credentials.json").st_mode & 0o777) == "0o600"
    r = httpx.post(f"{first.url}/hooks/kartra", params={"token": token}, json=KARTRA_VISIT)
    assert r.status_code == 202
    delivery_id = r.json()["delivery_id"]
    out1 = first.stop()
    # The banner of the generating start shows the paste-ready URL with the secret, once.
    assert f"/hooks/kartra?token={token}" in out1
    assert out1.count(token) == 1
    assert creds["RECEIVER_API_KEY"] in out1

    second = Server(data_dir, env=env).start()
    try:
        assert json.loads((data_dir / "credentials.json").read_text()) == creds
        again = httpx.post(f"{second.url}/hooks/kartra", params={"token": token}, json=KARTRA_VISIT)
        assert again.status_code == 200
        assert again.json() == {"status": "duplicate", "delivery_id": delivery_id}
        wrong = httpx.post(f"{second.url}/hooks/kartra", params={"token": "x"}, json=KARTRA_VISIT)
        assert wrong.status_code == 401
    finally:
        out2 = second.stop()
    for secret in creds.values():
        assert secret not in out2  # not generated on this start: never printed again
    assert DB(data_dir / "receiver.db").count("deliveries") == 1


def test_access_log_redacts_credentials(server: Server) -> None:
    token = SECRETS["RECEIVER_KARTRA_TOKEN"]
    httpx.post(f"{server.url}/hooks/kartra", params={"token": token}, json=KARTRA_VISIT)
    httpx.post(
        f"{server.url}/hooks/affitor/api/tracking/lead",
        headers={"Authorization": f"Bearer {SECRETS['RECEIVER_AFFITOR_TOKEN']}"},
        json={"customer_code": "c", "user_id": "u"},
    )
    httpx.post(
        f"{server.url}/hooks/convead",
        params={"app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]},
        data={"data": "{}"},
    )
    out = server.stop()
    assert "POST /hooks/kartra 202 " in out and "source=kartra" in out  # the request was logged...
    assert "query=[token]" in out
    for secret in SECRETS.values():
        assert secret not in out  # ...without any credential


def test_200_concurrent_deliveries_all_answered_and_stored(server: Server, db: DB) -> None:
    async def run() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as c:

            async def one(i: int) -> int:
                beacon = {**CROCT_BEACON, "originalTime": 1764028800000 + i}
                r = await c.post(
                    "/hooks/croct", json=beacon, headers={"X-App-Id": SECRETS["RECEIVER_CROCT_APP_ID"]}
                )
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(200)))

    statuses = asyncio.run(run())
    assert statuses == [202] * 200
    assert db.count("deliveries") == 200
    assert db.count("events") == 200
    assert httpx.get(f"{server.url}/healthz").status_code == 200
