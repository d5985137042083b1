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
    carried: list[Identity] = []
    """Identities in items that produced no event (unmapped or rejected ones)."""


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
    carried = (
        mapping.identities_in(document, headers, route_path, received_at)
        if outcome.errors or outcome.unmapped
        else []
    )
    if outcome.errors:
        return Mapped("rejected", [], [], outcome.errors, outcome.unmapped, carried)
    events = []
    identities = []
    source, name = mapping.source, mapping.name
    for position, m in enumerate(outcome.events):
        events.append(
            Event(  # positional, in Event's field order (events.py); tests check each field
                event_id(delivery_id, position),
                source,
                m.source_type,
                m.type,
                m.occurred_at or received_at,
                received_at,
                None,
                m.anonymous_id,
                m.lead,
                m.properties,
                m.context,
                m.extra,
                delivery_id,
                name,
            )
        )
        identities.append(m.identities)
    status: Status = "unmapped" if outcome.unmapped else "accepted"
    return Mapped(status, events, identities, [], outcome.unmapped, carried)
