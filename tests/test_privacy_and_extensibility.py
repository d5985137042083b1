"""Privacy on disk (docs/privacy.md) and a fifth vendor added with one file, no Python."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import AUTH, DB, ROOT, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app

EMAIL, NAME, PHONE = "Private.Person@Example.com", "Priscilla Private", "+14155550123"


def test_affitor_lead_leaves_no_clear_email_name_or_phone_on_disk(client: TestClient, db: DB) -> None:
    body = {
        "customer_code": "cust_1",
        "user_id": "usr_1",
        "email": EMAIL,
        "name": NAME,
        "phone": PHONE,
        "additional_data": {"plan": "free"},
    }
    r = client.post("/hooks/affitor/api/tracking/lead", json=body, **AUTH["affitor"])
    assert r.status_code == 200, r.text
    # and a rejected one (missing user_id) is redacted the same way before it is written
    r = client.post("/hooks/affitor/api/tracking/lead", json={**body, "user_id": ""}, **AUTH["affitor"])
    assert r.status_code == 400
    raw = db.dump()
    for secret in (EMAIL, EMAIL.lower(), NAME, PHONE, "Priscilla"):
        assert secret.encode() not in raw, secret
    [event] = db.events()
    assert event["lead"]["email_masked"] == "p***@example.com"
    assert len(event["lead"]["email_sha256"]) == 64
    assert "email" not in event["lead"] and "name" not in event["lead"] and "phone" not in event["lead"]


FIFTH = """
source: pingly
version: 3
envelope:
  body: json
  credential: {setting: RECEIVER_PINGLY_SECRET, locations: [header:x-pingly-secret]}
  routes:
    - path: /
    - path: /v2/notify
      answer: {style: ok}
type_from: [/kind]
identities:
  - {kind: pingly_contact, from: [/contact/id]}
fields:
  occurred_at: {from: [/ts], transforms: [epoch_s]}
  lead.email: /contact/mail
  lead.first_name: {from: [/contact/given], transforms: [trim]}
  properties.value: {from: [/amount], transforms: [number]}
types:
  signup: user.signed_up
  sale:
    type: order.placed
    fields:
      properties.order.id: {from: [/order], transforms: [string]}
    constraints:
      /amount: {required: true, type: number, minimum: 0}
"""


def test_fifth_vendor_from_one_file(tmp_path: Path) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings, ignore=shutil.ignore_patterns("*.md"))
    (mappings / "pingly.yaml").write_text(FIFTH)
    env = make_env(tmp_path / "data", RECEIVER_MAPPINGS_DIR=str(mappings), RECEIVER_PINGLY_SECRET="s3")
    settings = Settings.from_env(env)
    with TestClient(create_app(settings)) as client:
        headers = {"X-Pingly-Secret": "s3"}
        sale = {
            "kind": "sale",
            "ts": 1764028800,
            "order": 991,
            "amount": "12.50",
            "contact": {"id": 7, "mail": " Bo@Example.com", "given": " Bo "},
            "note": "hi",
        }
        r = client.post("/hooks/pingly/v2/notify", json=sale, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["events"][0]["type"] == "order.placed"
        bad = client.post("/hooks/pingly", json={**sale, "amount": -1}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["errors"] == [{"path": "/amount", "message": "must be non-negative"}]
        assert client.post("/hooks/pingly", json=sale, headers={"X-Pingly-Secret": "no"}).status_code == 401
        assert "/hooks/pingly/v2/notify" in client.get("/openapi.json").json()["paths"]
        # The other four sources are still there.
        assert client.post("/hooks/kartra", json={"action": "x"}, **AUTH["kartra"]).status_code == 202
    [event] = DB(settings.sqlite_path).events()  # type: ignore[arg-type]
    assert event["mapping"] == "pingly@3"
    assert event["occurred_at"] == "2025-11-25T00:00:00.000Z"
    assert event["lead"] == {
        "email": "bo@example.com",
        "first_name": "Bo",
        "email_sha256": event["lead"]["email_sha256"],
        "email_masked": "b***@example.com",
    }
    assert event["properties"] == {"value": 12.5, "order": {"id": "991"}}
    assert event["extra"] == {"note": "hi", "contact": {"id": 7}}
