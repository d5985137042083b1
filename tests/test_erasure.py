"""Erasure (docs/erasure.md) over HTTP: it finds the person in every spelling and place,
answers pending while a reader holds the SQLite WAL, never stalls ingest, and completes
(also across a restart) as soon as the reader lets go."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import AUTH, DB, SECRETS, Server
from starlette.testclient import TestClient

from receiver.mapping.transforms import sha256_hex

KEY = {"Authorization": f"Bearer {SECRETS['RECEIVER_API_KEY']}"}
EMAIL = "zq.marker@erase-test.example"
SENT = "ZQ.Marker@Erase-Test.example"  # as the vendors spell it: mixed case
FIRST, LAST = "Zqfirstname", "Zqlastname"
KARTRA_ID = "5550001"


def markers() -> list[bytes]:
    """The person in every spelling the store could hold, lower-cased (grep is case-blind)."""
    return [
        m.lower().encode()
        for m in (
            EMAIL,
            quote(EMAIL, safe=""),  # URL-encoded
            EMAIL.replace("@", "\\u0040"),  # JSON-escaped
            EMAIL.replace("@", "%5Cu0040"),  # JSON-escaped inside a URL-encoded field
            EMAIL.replace("@", "&#64;"),  # HTML-escaped
            sha256_hex(EMAIL),
            FIRST,
            LAST,
            f"zq-visitor-{KARTRA_ID}",
        )
    ]


def kartra_body(lead: dict[str, Any], action: str) -> bytes:
    body = json.dumps({"lead": lead, "action": action, "action_details": {"form_id": "3"}})
    return body.replace("@", "\\u0040").encode()  # as Kartra's PHP encoder may write it


def deliver_the_person(c: Any) -> str:
    """Everything one person leaves in the store, from every vendor; returns the lead id."""
    kartra = {"params": AUTH["kartra"]["params"], "headers": {"Content-Type": "application/json"}}
    lead = {"id": KARTRA_ID, "email": SENT, "first_name": FIRST, "last_name": LAST}
    r = c.post("/hooks/kartra", content=kartra_body(lead, "filled_form"), **kartra)
    assert r.status_code == 202, r.text
    first_event = r.json()["events"][0]["id"]
    # Unmapped: an action no mapping knows, the same Kartra lead id and first name, no email.
    r = c.post(
        "/hooks/kartra",
        content=kartra_body({"id": KARTRA_ID, "first_name": FIRST}, "some_future_action"),
        **kartra,
    )
    assert r.status_code == 202 and r.json()["status"] == "unmapped", r.text
    # Rejected, the email JSON-escaped in the query string (Convead sends events that way).
    data = {
        "type": "purchase",
        "visitor_uid": f"zq-visitor-{KARTRA_ID}",
        "visitor_info": {"email": SENT, "first_name": FIRST},
        "properties": {"revenue": "a lot"},
    }
    query = {**AUTH["convead"]["headers"], "app_key": SECRETS["RECEIVER_CONVEAD_APP_KEY"]}
    query["data"] = json.dumps(data).replace("@", "\\u0040")
    r = c.post("/hooks/convead", params=query)
    assert r.status_code == 422, r.text
    # A form body: the email URL-encoded inside a JSON field inside the form.
    r = c.post(
        "/hooks/convead",
        data={
            "visitor_uid": "zq-v2",
            "data": json.dumps({"type": "update_info", "visitor_info": {"email": SENT}}),
        },
        **AUTH["convead"],
    )
    assert r.status_code == 202, r.text
    r = c.post("/hooks/croct", json={"type": "leadGenerated", "lead": {"email": SENT}}, **AUTH["croct"])
    assert r.status_code == 202, r.text
    # Rejected (a negative value), the address HTML-escaped by some form on the way.
    html_escaped = {"type": "leadGenerated", "value": -1, "lead": {"email": SENT.replace("@", "&#64;")}}
    r = c.post("/hooks/croct", json=html_escaped, **AUTH["croct"])
    assert r.status_code == 422, r.text
    # Affitor keeps the email only as hash and mask: the stored body holds the hash.
    r = c.post(
        "/hooks/affitor/api/tracking/lead",
        json={"customer_code": "zq-c", "user_id": "zq-u", "email": SENT, "name": f"{FIRST} {LAST}"},
        **AUTH["affitor"],
    )
    assert r.status_code == 200, r.text
    r = c.post("/hooks/affitor/api/tracking/lead", json={"email": SENT}, **AUTH["affitor"])  # no ids
    assert r.status_code == 400, r.text
    lead_id: str = c.get(f"/v1/events/{first_event}", headers=KEY).json()["lead_id"]
    assert lead_id
    return lead_id


def deliver_someone_else(c: Any, n: int = 0) -> httpx.Response | Any:
    return c.post(
        "/hooks/kartra",
        json={"lead": {"id": f"k{n}", "email": f"keeper{n}@example.com", "first_name": "Keeper"},
              "action": "filled_form"},
        **AUTH["kartra"],
    )  # fmt: skip


def left_behind(raw: bytes) -> list[bytes]:
    low = raw.lower()
    return [m for m in markers() if m in low]


def test_erasure_finds_the_person_in_every_spelling_and_place(client: TestClient, db: DB) -> None:
    lead_id = deliver_the_person(client)
    assert deliver_someone_else(client).status_code == 202
    before = db.dump()
    assert left_behind(before), "the markers are stored before the erasure"
    deliveries_before = db.count("deliveries")

    r = client.delete(f"/v1/leads/{lead_id}", headers=KEY)
    assert r.status_code == 200, r.text
    erasure = r.json()
    assert erasure["state"] == "complete" and erasure["caveat"]
    # Every delivery of the person, whatever its status; the other person's stays.
    assert erasure["erased"]["deliveries"] == deliveries_before - 1 == 8
    assert db.count("deliveries") == 1
    if db.backend == "postgres":
        assert "VACUUM" in erasure["caveat"]
    assert left_behind(db.dump()) == []
    assert b"keeper" in db.dump().lower()
    assert client.get(f"/v1/leads/{lead_id}", headers=KEY).status_code == 404
    assert client.get("/v1/leads", params={"email": EMAIL}, headers=KEY).json()["data"] == []
    assert client.delete(f"/v1/leads/{lead_id}", headers=KEY).status_code == 404
    # The person may come back: that is a new lead, not the erased one.
    again = client.post(
        "/hooks/croct", json={"type": "leadGenerated", "lead": {"email": SENT}}, **AUTH["croct"]
    )
    new = client.get(f"/v1/events/{again.json()['events'][0]['id']}", headers=KEY).json()["lead_id"]
    assert new and new != lead_id


def test_erasure_resource(client: TestClient) -> None:
    lead_id = deliver_the_person(client)
    assert client.delete(f"/v1/leads/{lead_id}").status_code == 401
    erasure = client.delete(f"/v1/leads/{lead_id}", headers=KEY)
    location = erasure.headers["location"]
    assert location == f"/v1/erasures/{erasure.json()['id']}"
    assert client.get(location).status_code == 401
    got = client.get(location, headers=KEY).json()
    assert got == erasure.json()
    assert set(got) == {"id", "state", "requested_at", "completed_at", "erased", "caveat"}
    assert lead_id not in json.dumps(got)  # the record names nobody, not even the lead id
    r = client.get("/v1/erasures/0190d1a2-0000-7000-8000-000000000000", headers=KEY)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


class OutsideReader:
    """A backup tool or a sqlite3 shell: another process with a read transaction open.
    (Another process, because closing any descriptor of the file in this one, as reading
    the files for the markers does, would drop this process's SQLite locks on it.)"""

    SCRIPT = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN'); c.execute('SELECT count(*) FROM deliveries').fetchone()\n"
        "print('reading', flush=True); sys.stdin.readline(); c.execute('COMMIT')\n"
    )

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "reading\n"

    def finish(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("done\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _timed_deliveries(server: Server, first: int, n: int) -> list[float]:
    took = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for i in range(first, first + n):
            started = time.monotonic()
            assert deliver_someone_else(c, i).status_code == 202
            took.append(time.monotonic() - started)
    return took


def _wait_complete(server: Server, location: str, seconds: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        erasure: dict[str, Any] = httpx.get(server.url + location, headers=KEY).json()
        if erasure["state"] == "complete":
            return erasure
        time.sleep(0.1)
    raise AssertionError(f"the erasure is still pending after {seconds} s")


@pytest.mark.sqlite_only
def test_a_reader_holding_the_wal_makes_erasure_pending_never_stalls_ingest_and_survives_a_restart(
    server: Server, db: DB, env: dict[str, str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        lead_id = deliver_the_person(c)
    usual = max(_timed_deliveries(server, 0, 10))

    reader = OutsideReader(db.path)
    try:
        started = time.monotonic()
        r = httpx.delete(f"{server.url}/v1/leads/{lead_id}", headers=KEY, timeout=30)
        assert time.monotonic() - started < 2, "the erasure waited for the reader"
        assert r.status_code == 202, r.text
        pending = r.json()
        assert pending["state"] == "pending" and pending["completed_at"] is None
        assert "reader" in pending["caveat"] or "snapshot" in pending["caveat"]
        location = r.headers["location"]
        # The rows are gone at once; the WAL still holds their old pages (honestly pending).
        assert httpx.get(f"{server.url}/v1/leads/{lead_id}", headers=KEY).status_code == 404
        assert left_behind(db.dump())

        # Ingest goes on in its usual time while the purge waits for the reader.
        during = _timed_deliveries(server, 100, 20)
        assert max(during) < max(2.0, 20 * usual), (usual, during)
        t = time.monotonic()
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
        assert time.monotonic() - t < 2

        # The pending purge survives a restart.
        server.stop()
        server.start()
        assert httpx.get(server.url + location, headers=KEY).json()["state"] == "pending"
    finally:
        reader.finish()

    done = _wait_complete(server, location)
    assert done["completed_at"] and done["erased"] == pending["erased"]
    files = db.files()
    assert set(files) >= {"receiver.db", "receiver.db-wal", "receiver.db-shm"}
    for name, raw in files.items():
        assert left_behind(raw) == [], name
    assert b"keeper" in files["receiver.db"].lower() + files["receiver.db-wal"].lower()
