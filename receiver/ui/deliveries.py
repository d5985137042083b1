"""The raw delivery log: the list (with a live mode), one delivery, and its replay."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..replay import replay_delivery
from ..store.base import DeliveryQuery
from ..writer import Overloaded
from .bodyview import Reason, body_view
from .diff import compare_events
from .hooks import curl
from .session import Session
from .web import UI, PageError, Params, not_found

STATUSES = ("accepted", "unmapped", "rejected")
PAGE = 50
#: Events shown on a delivery's page (a batch may hold many more; the events page has them all).
EVENT_LIMIT = 100
ID_PART = re.compile(r"^[0-9a-fA-F-]{1,36}$")


def _filters(ui: UI, request: Request) -> tuple[DeliveryQuery, dict[str, str], list[str]]:
    p = Params(request)
    filters = {
        "source": p.choice("source", ui.sources),
        "status": p.choice("status", STATUSES),
        "q": p.pattern("q", ID_PART, "part of a delivery id (0-9, a-f and -)").lower(),
    }
    q = DeliveryQuery(
        status=filters["status"] or None, source=filters["source"] or None, id_contains=filters["q"] or None
    )
    return q, filters, p.errors


async def deliveries(ui: UI, request: Request, session: Session) -> Response:
    q, filters, errors = _filters(ui, request)
    before = Params(request).cursor()
    rows = await ui.store.list_deliveries(q, before, PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    ctx = {
        "title": "Deliveries",
        "nav": "deliveries",
        "rows": rows,
        "filters": filters,
        "statuses": STATUSES,
        "errors": errors,
        "before": before,
        "next_before": rows[-1]["id"] if more else None,
        "overflow": False,
    }
    return ui.render(request, "deliveries.html", ctx, session)


async def live_rows(ui: UI, request: Request, session: Session) -> Response:
    """Rows newer than ``after`` (the live mode polls this): a fragment of the same table."""
    q, _, _ = _filters(ui, request)
    after = request.query_params.get("after", "")
    rows = await ui.store.list_deliveries(q, None, PAGE)
    fresh = [r for r in rows if r["id"] > after]
    # More new rows than one poll shows: the page says so instead of silently skipping.
    overflow = len(fresh) == len(rows) == PAGE and bool(after)
    return ui.render(request, "_delivery_rows.html", {"rows": fresh, "overflow": overflow}, session)


async def _events_of(ui: UI, record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ref in record["events"][:EVENT_LIMIT]:
        event = await ui.store.get_event(ref["id"])
        out.append(event if event is not None else {"id": ref["id"], "type": ref["type"], "missing": True})
    return out


async def _page(ui: UI, request: Request, session: Session, replay: dict[str, Any] | None = None) -> Response:
    delivery_id = request.path_params["id"]
    record = await ui.store.get_delivery_record(delivery_id)
    if record is None:
        raise not_found("delivery", delivery_id)
    m = ui.mappings.get(record["source"])
    view = body_view(
        record.get("body"),
        record["body_format"],
        m.envelope if m else None,
        ui.event_roots(record["source"]),
        record["reasons"],
    )
    ctx = {
        "title": f"Delivery {delivery_id}",
        "nav": "deliveries",
        "d": record,
        "view": view,
        "events": await _events_of(ui, record),
        "more_events": max(0, len(record["events"]) - EVENT_LIMIT),
        "curl": curl(record, m, ui.base_url(request)),
        "replay": replay,
    }
    return ui.render(request, "delivery.html", ctx, session)


async def delivery(ui: UI, request: Request, session: Session) -> Response:
    return await _page(ui, request, session)


async def replay(ui: UI, request: Request, session: Session) -> Response:
    """Map the stored delivery again with today's mapping; show the page with what changed."""
    delivery_id = request.path_params["id"]
    before = await ui.store.get_delivery_record(delivery_id)
    row = await ui.store.raw_delivery(delivery_id)
    if before is None or row is None:
        raise not_found("delivery", delivery_id)
    events_before = await _events_of(ui, before)
    try:
        result = await replay_delivery(ui.mappings, ui.writer, row)
    except Overloaded:
        raise PageError(
            503, "Busy", "The write queue is full; replay again shortly.", {"Retry-After": "1"}
        ) from None
    after = await ui.store.get_delivery_record(delivery_id)
    events_after = await _events_of(ui, after) if after is not None else []
    summary = {
        "status_before": before["status"],
        "status_after": result.status,
        "reasons_before": [Reason(r["path"], r["message"]) for r in before["reasons"]],
        "reasons_after": [Reason(r.path, r.message) for r in result.reasons],
        "mapping_before": before["mapping"],
        "mapping_after": after["mapping"] if after else None,
        "events": compare_events(events_before, events_after),
    }
    summary["changed"] = (
        summary["status_before"] != summary["status_after"]
        or summary["reasons_before"] != summary["reasons_after"]
        or any(e.changes for e in summary["events"])
    )
    return await _page(ui, request, session, replay=summary)
