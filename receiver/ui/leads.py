"""Leads: search by email or id, one lead with its timeline, and erasure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..leads import flatten
from ..mapping.transforms import sha256_hex
from ..store.base import EventQuery, LeadQuery
from .session import Session
from .web import ID, PREFIX, UI, Params, not_found

PAGE = 50
#: Events read to tell where each trait came from (a lead with more shows "earlier").
PROVENANCE_EVENTS = 2000


@dataclass
class Trait:
    name: str
    value: Any
    source: str | None = None
    at: str | None = None
    event_id: str | None = None


async def leads(ui: UI, request: Request, session: Session) -> Response:
    p = Params(request)
    wanted = p.pattern("id", ID, "a lead id")
    if wanted:
        found = await ui.store.get_lead(wanted)
        if found is not None:
            return RedirectResponse(f"{PREFIX}/leads/{found['id']}", status_code=303)
        p.errors.append(f"There is no lead with the id {wanted}.")
    source = p.choice("source", ui.sources)
    before = p.cursor()
    rows = await ui.store.list_leads(LeadQuery(source=source or None), before, PAGE + 1)
    return _list(ui, request, session, rows, p.errors, {"source": source, "id": wanted}, before)


def _list(
    ui: UI,
    request: Request,
    session: Session,
    rows: list[dict[str, Any]],
    errors: list[str],
    filters: dict[str, str],
    before: str | None,
    searched: bool = False,
) -> Response:
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    ctx = {
        "title": "Leads",
        "nav": "leads",
        "rows": rows,
        "errors": errors,
        "filters": filters,
        "before": before,
        "next_before": rows[-1]["id"] if more else None,
        "searched": searched,
    }
    return ui.render(request, "leads.html", ctx, session)


async def search(ui: UI, request: Request, session: Session) -> Response:
    """By email, posted, so the address never lands in a URL, a log line or the history."""
    email = (await ui.form(request)).get("email", "").strip()
    errors = [] if "@" in email else ["Enter a whole email address."]
    rows = (
        await ui.store.list_leads(LeadQuery(email_sha256=sha256_hex(email)), None, PAGE + 1)
        if not errors
        else []
    )
    return _list(ui, request, session, rows, errors, {"source": "", "id": ""}, None, searched=True)


def _traits(lead: dict[str, Any], events: list[dict[str, Any]]) -> list[Trait]:
    """Each merged trait with the event that set it: the latest, by ``occurred_at``, carrying
    that value (traits merge newest-first, so that is the one that won)."""
    current = flatten(lead["traits"])
    out = {name: Trait(name, value) for name, value in sorted(current.items())}
    for e in events:
        carried = flatten(e.get("lead") or {})
        for name, value in carried.items():
            t = out.get(name)
            if t is not None and value == t.value and (t.at is None or e["occurred_at"] > t.at):
                t.source, t.at, t.event_id = e["source"], e["occurred_at"], e["id"]
    return list(out.values())


async def lead(ui: UI, request: Request, session: Session) -> Response:
    return await _lead_page(ui, request, session)


async def _lead_page(
    ui: UI, request: Request, session: Session, confirm_error: str = "", status: int = 200
) -> Response:
    lead_id = request.path_params["id"]
    found = await ui.store.get_lead(lead_id)
    if found is None:
        raise not_found("lead", lead_id)
    live = found["id"]
    before = Params(request).cursor()
    timeline = await ui.store.list_events(EventQuery(lead_id=live), before, PAGE + 1)
    recent = await ui.store.list_events(EventQuery(lead_id=live), None, PROVENANCE_EVENTS)
    more = len(timeline) > PAGE
    timeline = timeline[:PAGE]
    ctx = {
        "title": f"Lead {live}",
        "nav": "leads",
        "lead": found,
        "asked": lead_id,
        "traits": _traits(found, recent),
        "merged": await ui.store.merged_lead_ids(live),
        "timeline": timeline,
        "before": before,
        "next_before": timeline[-1]["id"] if more else None,
        "partial_provenance": len(recent) >= PROVENANCE_EVENTS,
        "confirm_error": confirm_error,
    }
    return ui.render(request, "lead.html", ctx, session, status)


async def erase(ui: UI, request: Request, session: Session) -> Response:
    """Erase after the lead id was typed again. The store may finish in the background:
    the page says which, by asking the store whether the lead still answers."""
    lead_id = request.path_params["id"]
    found = await ui.store.get_lead(lead_id)
    if found is None:
        raise not_found("lead", lead_id)
    typed = (await ui.form(request)).get("confirm", "").strip()
    if typed not in (lead_id, found["id"]):
        error = f"Nothing was erased: type the id {found['id']} exactly to confirm."
        return await _lead_page(ui, request, session, confirm_error=error, status=400)
    result = await ui.store.erase_lead(found["id"])
    if not result:  # unknown by now (erased meanwhile)
        raise not_found("lead", lead_id)
    done = await ui.store.get_lead(found["id"]) is None
    # A store may report that old copies of pages are still being purged from its files.
    purging = getattr(result, "state", None) == "pending"
    ctx = {
        "title": "Lead erased" if done else "Erasure under way",
        "nav": "leads",
        "lead_id": found["id"],
        "done": done,
        "purging": purging,
    }
    return ui.render(request, "erased.html", ctx, session)
