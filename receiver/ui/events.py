"""Canonical events: the list with the read API's filters, and one event."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from ..clock import rfc3339
from ..events import EventType
from ..store.base import EventQuery
from .bodyview import json_lines
from .session import Session
from .web import ID, UI, Params, not_found

PAGE = 50
TYPES = sorted(t.value for t in EventType)


def _moment(p: Params, name: str) -> tuple[str, str]:
    """A time filter: the form's ``datetime-local`` value (read as UTC) or RFC 3339.
    Returns what the form shows back and what the store compares with."""
    raw = p.query.get(name, "").strip()
    if not raw:
        return "", ""
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        p.errors.append(f"{name} must be a date and time, e.g. 2026-01-31T12:00; the filter was left out.")
        return "", ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M"), rfc3339(t)


async def events(ui: UI, request: Request, session: Session) -> Response:
    p = Params(request)
    since_shown, since = _moment(p, "since")
    until_shown, until = _moment(p, "until")
    filters = {
        "source": p.choice("source", ui.sources),
        "type": p.choice("type", TYPES),
        "lead_id": p.pattern("lead_id", ID, "a lead id"),
        "since": since_shown,
        "until": until_shown,
    }
    q = EventQuery(
        source=filters["source"] or None,
        type=filters["type"] or None,
        lead_id=filters["lead_id"] or None,
        since=since or None,
        until=until or None,
    )
    before = p.cursor()
    rows = await ui.store.list_events(q, before, PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    ctx = {
        "title": "Events",
        "nav": "events",
        "rows": rows,
        "filters": filters,
        "types": TYPES,
        "errors": p.errors,
        "before": before,
        "next_before": rows[-1]["id"] if more else None,
    }
    return ui.render(request, "events.html", ctx, session)


async def event(ui: UI, request: Request, session: Session) -> Response:
    event_id = request.path_params["id"]
    found = await ui.store.get_event(event_id)
    if found is None:
        raise not_found("event", event_id)
    lines, dropped = json_lines(found)
    ctx = {"title": f"Event {event_id}", "nav": "events", "e": found, "lines": lines, "truncated": dropped}
    return ui.render(request, "event.html", ctx, session)
