"""The real Croct JavaScript SDK (npm @croct/sdk, in a jsdom page under node) against a
running `receiver serve` with the app id it generated, read back through the read API.

Skipped only where node or npm are not installed. `scripts/test` installs the SDK
(tests/sdk/package-lock.json); run alone, this test installs it the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Server

SDK_DIR = ROOT / "tests" / "sdk"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: the real Croct SDK cannot run here")
    if not (SDK_DIR / "node_modules" / "@croct" / "sdk").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SDK_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return node


def test_the_croct_sdk_tracks_into_the_receiver_with_the_generated_app_id(node: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    server = Server(data_dir, env={**env, "RECEIVER_DATA_DIR": str(data_dir)}).start()
    try:
        generated = json.loads((data_dir / "credentials.json").read_text())
        app_id = generated["RECEIVER_CROCT_APP_ID"]
        assert uuid.UUID(app_id)  # what the SDK validates before sending anything
        run = subprocess.run(
            [node, "track.mjs"],
            cwd=SDK_DIR,
            env={**env, "RECEIVER_CROCT_BASE": f"{server.url}/hooks/croct", "RECEIVER_CROCT_APP_ID": app_id},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        # No "invalid uuid", no "tracking suspended" (a 202 on /client/web/track), no failure.
        assert report["errors"] == [] and report["warnings"] == [], report
        cid = report["cid"]

        key = {"Authorization": f"Bearer {generated['RECEIVER_API_KEY']}"}
        events = httpx.get(f"{server.url}/v1/events", params={"source": "croct"}, headers=key).json()["data"]
        by_type = {e["type"]: e for e in events}
        # tab.opened and page.viewed come from the SDK on its own when tracking is enabled.
        expected = {
            "tab.opened",
            "page.viewed",
            "goal.completed",
            "lead.captured",
            "user.signed_in",
            "product.viewed",
        }
        assert expected <= set(by_type), sorted(by_type)
        assert {e["anonymous_id"] for e in events} == {cid}

        goal = by_type["goal.completed"]
        assert goal["source_type"] == "goalCompleted"
        assert goal["properties"] == {"goal_id": "newsletter-sign-up", "value": 10, "currency": "USD"}
        assert goal["context"]["campaign"] == {"source": "newsletter", "medium": "email", "name": "spring"}
        assert goal["context"]["page"]["url"].startswith("https://shop.example/products/42")
        assert by_type["page.viewed"]["properties"]["page"]["referrer"] == "https://search.example/?q=shoes"
        assert by_type["product.viewed"]["properties"]["product"]["sku"] == "RS-42"

        leads = httpx.get(
            f"{server.url}/v1/leads", params={"email": "ana.sdk@example.com"}, headers=key
        ).json()["data"]
        assert len(leads) == 1
        lead = leads[0]
        assert lead["traits"]["email"] == "ana.sdk@example.com"  # trimmed and lower-cased
        assert lead["traits"]["first_name"] == "Ana" and lead["traits"]["last_name"] == "Lima"
        identities = {(i["kind"], i["value"]) for i in lead["identities"]}
        assert ("croct_client_id", cid) in identities
        assert ("croct_user_id", "sdk-user-42") in identities  # from the SDK's X-Token
        # Every event of that browser belongs to the lead, those before the lead was known too.
        assert {e["lead_id"] for e in events} == {lead["id"]} and lead["event_count"] == len(events)
    finally:
        server.stop()
