"""``map_document`` builds each stored event positionally (it is on the hot path): every
field must land in its own place."""

from __future__ import annotations

from pathlib import Path

from receiver.ids import new_id
from receiver.mapping import load_dir
from receiver.pipeline import map_document

ROOT = Path(__file__).resolve().parent.parent


def test_each_event_field_holds_its_own_value() -> None:
    mapping = load_dir(ROOT / "mappings")["kartra"]
    doc = {
        "action": "filled_form",
        "action_details": {"form": {"form_name": "Signup"}},
        "lead": {"email": "Ann@Example.com", "first_name": "Ann", "ip": "203.0.113.9"},
    }
    delivery_id = new_id()
    received_at = "2025-11-25T10:00:00.000Z"
    out = map_document(mapping, doc, {}, "/", received_at, delivery_id)
    assert out.status == "accepted", out.reasons
    (event,) = out.events
    assert event.id.startswith(delivery_id[:19]) and event.id != delivery_id
    assert event.source == mapping.source == "kartra"
    assert event.source_type == "filled_form"
    assert event.type not in ("filled_form", "kartra") and event.type
    assert event.occurred_at == received_at  # the vendor sent no time of its own
    assert event.received_at == received_at
    assert event.lead_id is None  # resolved by the writer
    assert event.lead is not None and event.lead["email"] == "ann@example.com"
    assert isinstance(event.properties, dict) and isinstance(event.context, dict)
    assert isinstance(event.extra, dict)
    assert event.delivery_id == delivery_id
    assert event.mapping == mapping.name and event.mapping != mapping.source
    (identities,) = out.identities
    assert [(i.kind, i.value) for i in identities] == [("email_sha256", event.lead["email_sha256"])]
