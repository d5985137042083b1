"""From a parsed, redacted document to what is stored: shared by ingest and replay."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from .events import Event, Identity
from .ids import event_id
from .mapping import CompiledMapping
from .problems import FieldError
from .store.base import Status


class Mapped(Struct):
    status: Status
    events: list[Event]
    identities: list[list[Identity]]
    reasons: list[FieldError]
    unmapped: list[dict[str, Any]]


def map_document(
    mapping: CompiledMapping,
    document: Any,
    headers: dict[str, str],
    route_path: str,
    received_at: str,
    delivery_id: str,
) -> Mapped:
    try:
        outcome = mapping.map(document, headers, route_path, received_at)
    except RecursionError:
        return Mapped("rejected", [], [], [FieldError("", "is nested too deeply")], [])
    if outcome.errors:
        return Mapped("rejected", [], [], outcome.errors, outcome.unmapped)
    events = []
    identities = []
    for position, m in enumerate(outcome.events):
        events.append(
            Event(
                id=event_id(delivery_id, position),
                source=mapping.source,
                source_type=m.source_type,
                type=m.type,
                occurred_at=m.occurred_at or received_at,
                received_at=received_at,
                lead_id=None,
                anonymous_id=m.anonymous_id,
                lead=m.lead,
                properties=m.properties,
                context=m.context,
                extra=m.extra,
                delivery_id=delivery_id,
                mapping=mapping.name,
            )
        )
        identities.append(m.identities)
    status: Status = "unmapped" if outcome.unmapped else "accepted"
    return Mapped(status, events, identities, [], outcome.unmapped)
