"""Privacy at every depth of a mapping (a switch case, the value of a keyed each, a field of
an each, an each value), in the event, the lead, the stored raw body and a replay; and
the markers the engine cannot honour, refused at load with the file, key and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import DB, ROOT, make_env
from starlette.testclient import TestClient

from receiver import Settings, create_app
from receiver.mapping import MappingError, load_file
from receiver.mapping.transforms import mask, sha256_hex

VAULT = """
source: vault
version: 1
envelope:
  body: json
  credential: {setting: RECEIVER_VAULT_TOKEN, locations: [header:x-vault-token]}
type_from: [/kind]
identities:
  - {kind: vault_user, from: [/user]}
fields:
  lead.email: {from: [/email], privacy: [hash, mask]}
  lead.custom:
    each: /answers
    key: /name
    value:
      switch: /type
      cases:
        secret: {from: [/value], privacy: [hash]}
        ssn: {from: [/value], privacy: [drop]}
        "*": /value
  properties.contacts:
    each: /contacts
    fields:
      name: /name
      phone: {from: [/phone], transforms: [{phone: {country: [/country]}}], privacy: [hash, mask]}
  properties.tokens:
    each: /tokens
    value: {from: [/v], privacy: [drop]}
types:
  signup: user.signed_up
"""

PIN, SSN, TOKEN, PHONE, EMAIL = (
    "4242-PIN",
    "078-05-1120",
    "tok-SECRET-1",
    "(415) 555-0199",
    "Vera@Vault.example",
)
BODY = {
    "kind": "signup",
    "user": "u-1",
    "email": EMAIL,
    "answers": [
        {"name": "pin", "type": "secret", "value": PIN},
        {"name": "ssn", "type": "ssn", "value": SSN},
        {"name": "color", "type": "text", "value": "blue"},
    ],
    "contacts": [{"name": "Ann", "phone": PHONE, "country": "US"}],
    "tokens": [{"v": TOKEN}, {"v": TOKEN + "-2"}],
}


@pytest.fixture
def vault(tmp_path: Path) -> tuple[TestClient, DB]:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings, ignore=shutil.ignore_patterns("*.md"))
    (mappings / "vault.yaml").write_text(VAULT)
    env = make_env(tmp_path / "data", RECEIVER_MAPPINGS_DIR=str(mappings), RECEIVER_VAULT_TOKEN="v")
    settings = Settings.from_env(env)
    assert settings.sqlite_path is not None
    return TestClient(create_app(settings)), DB(settings.sqlite_path)


def test_privacy_in_a_switch_case_an_each_value_and_an_each_field_is_honoured(
    vault: tuple[TestClient, DB],
) -> None:
    client, db = vault
    key = {"X-Vault-Token": "v", "X-API-Key": "unused"}
    with client:
        r = client.post("/hooks/vault", json=BODY, headers=key)
        assert r.status_code == 202, r.text
        delivery_id = r.json()["delivery_id"]
        stored = client.get(f"/v1/deliveries/{delivery_id}", headers={"Authorization": "Bearer read-api-key"})
        replay = client.post(
            f"/v1/deliveries/{delivery_id}/replay", headers={"Authorization": "Bearer read-api-key"}
        )
        assert replay.status_code == 200 and replay.json()["status"] == "accepted", replay.text
    [event] = db.events()
    assert event["lead"]["custom"] == {"pin_sha256": sha256_hex(PIN), "color": "blue"}
    assert event["lead"]["email_sha256"] == sha256_hex(EMAIL) and event["lead"]["email_masked"] == mask(EMAIL)
    e164 = "+14155550199"  # hashed after its transforms: the normalized number
    assert event["properties"]["contacts"] == [
        {"name": "Ann", "phone_sha256": sha256_hex(e164), "phone_masked": mask(e164)}
    ]
    assert "tokens" not in event["properties"]
    body = stored.json()["body"]
    assert '"$redacted"' in body and "blue" in body and "Ann" in body
    raw = db.dump()
    for secret in (PIN, SSN, TOKEN, PHONE, e164, EMAIL, EMAIL.lower(), "4242"):
        assert secret.encode() not in raw, secret


def test_the_issue_reproductions_are_private_now(tmp_path: Path) -> None:
    """A drop in a switch case and a hash in an each value used to load with no privacy."""
    path = tmp_path / "vault.yaml"
    path.write_text(VAULT.replace("  lead.email: {from: [/email], privacy: [hash, mask]}\n", ""))
    m = load_file(path)
    assert m.has_privacy
    assert [k for k, _ in m.private] == [
        "fields.lead.custom.value.cases.secret",
        "fields.lead.custom.value.cases.ssn",
        "fields.properties.contacts.fields.phone",
        "fields.properties.tokens.value",
    ]
    doc = {**BODY, "answers": [dict(a) for a in BODY["answers"]]}
    assert m.redact(doc)
    assert doc["answers"][0]["value"]["$redacted"] == ["hash"]
    assert "value" not in doc["answers"][1]  # dropped
    assert doc["answers"][2]["value"] == "blue"  # its case is not private


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        (
            "value: {from: [/v], privacy: [drop]}",
            "value: {from: [/v], privacy: [hash]}",
            "fields.properties.tokens.value",
            "an array element has no name",
        ),
        ("key: /name", "key: {from: [/name], privacy: [hash]}", "fields.lead.custom.key", "member's name"),
        (
            "lead.email: {from: [/email], privacy: [hash, mask]}",
            'lead.email: {from: ["@header/x-email"], privacy: [hash]}',
            "fields.lead.email",
            "privacy applies to values in the body",
        ),
        (
            "lead.email: {from: [/email], privacy: [hash, mask]}",
            "lead.email: {from: [/email], privacy: [drop, hash]}",
            "fields.lead.email",
            "cannot be combined",
        ),
        (
            "lead.email: {from: [/email], privacy: [hash, mask]}",
            "lead.email: {from: [/email], privacy: [drop], required: true}",
            "fields.lead.email",
            "'required' could never be met",
        ),
        (
            "lead.email: {from: [/email], privacy: [hash, mask]}",
            "lead.email: {from: [/email], privacy: [drop], transforms: [trim]}",
            "fields.lead.email",
            "never converted",
        ),
        (
            "  - {kind: vault_user, from: [/user]}",
            "  - {kind: vault_user, from: [/email]}",
            "fields.lead.email",
            "also read, not privately, by identities[0]",
        ),
        (
            "types:\n",
            "  properties.raw_email: /email\ntypes:\n",
            "fields.lead.email",
            "also read, not privately, by fields.properties.raw_email",
        ),
        (
            "types:\n",
            "rewrite:\n  - {from: /old_email, to: /email}\ntypes:\n",
            "fields.lead.email",
            "rewrite[0] moves this value",
        ),
        (
            "switch: /type",
            'switch: "@header/x-type"',
            "fields.lead.custom.value.cases.secret",
            "the body is redacted before the request's headers",
        ),
        (
            "    value:\n      switch: /type",
            "    value:\n      privacy: [hash]\n      switch: /type",
            "fields.lead.custom.value",
            "privacy: these belong on the cases of a 'switch'",
        ),
    ],
)
def test_a_marker_the_engine_cannot_honour_is_refused(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    assert old in VAULT
    path = tmp_path / "vault.yaml"
    path.write_text(VAULT.replace(old, new, 1))
    with pytest.raises(MappingError) as e:
        load_file(path)
    assert e.value.where == f"{path}: {key}", e.value
    assert reason in e.value.reason, e.value.reason
