"""``/v1``: events, leads, deliveries, replay, erasure; behind ``Authorization: Bearer``."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..credentials import matches
from ..events import EventType
from ..mapping import CompiledMapping
from ..mapping.transforms import sha256_hex
from ..problems import FieldError, Problem
from ..replay import replay_delivery
from ..responses import JSONResponse, problem_response
from ..store.base import DeliveryQuery, EventQuery, LeadQuery, StorageError
from ..writer import Writer
from .export import FORMATS

log = logging.getLogger("receiver.read")
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
MAX_LIMIT = 1000
STATUSES = ("accepted", "unmapped", "rejected")
TYPES = tuple(t.value for t in EventType)
#: What an id (of an event, a lead, a delivery) can look like; anything else is unknown.
_ID = re.compile(r"[0-9A-Za-z_.:-]{1,100}")
_LIMIT = re.compile(r"[0-9]{1,4}")

#: The query parameters each list accepts; any other is a 400 naming these.
PAGING = ("limit", "cursor")
EVENT_FILTERS = ("source", "type", "since", "until", *PAGING)
EVENT_PARAMS = ("lead_id", *EVENT_FILTERS)
LEAD_PARAMS = ("email", "source", "updated_since", *PAGING)
DELIVERY_FILTERS = ("status", "source")
DELIVERY_PARAMS = (*DELIVERY_FILTERS, *PAGING)


def _storage_unavailable() -> Problem:
    return Problem(
        503, "Service Unavailable", "storage is unavailable; retry shortly", headers={"Retry-After": "1"}
    )


def _bad(name: str, message: str) -> Problem:
    return Problem(400, "Bad Request", f"invalid query parameter {name!r}", [FieldError(name, message)])


def _check_params(request: Request, allowed: Iterable[str]) -> None:
    """Unknown or repeated query parameters are a 400: a typo (``?sorce=croct``) must not
    silently answer everything."""
    names = [k for k, _ in request.query_params.multi_items()]
    allowed = tuple(allowed)
    for name in names:
        if name not in allowed:
            shown = name if len(name) <= 40 and name.isprintable() else "(a parameter)"
            expected = ", ".join(allowed) if allowed else "none"
            raise Problem(
                400,
                "Bad Request",
                f"unknown query parameter {shown!r}; this call takes {expected}",
                [FieldError(shown, f"is not a parameter of this call (allowed: {expected})")],
            )
        if names.count(name) > 1:
            raise _bad(name, "must be given once")


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return 100
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    message = "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z"
    if len(raw) > 40:
        raise _bad(name, message)
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise _bad(name, message) from None
    if t.tzinfo is None:
        raise _bad(name, "must carry a time zone (Z or an offset)")
    try:
        u = t.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _bad(name, "is out of range (years 0001 to 9999, in UTC)") from None
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def _id_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if not _ID.fullmatch(raw):
        raise _bad(name, "is not an id this API gave out")
    return raw


def _choice(request: Request, name: str, allowed: tuple[str, ...] | list[str]) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    if raw not in allowed:
        raise _bad(name, "must be one of " + ", ".join(allowed))
    return raw


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def _cursor(request: Request) -> str | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad("cursor", "is not a cursor this API gave out") from None
    if not _ID.fullmatch(value):
        raise _bad("cursor", "is not a cursor this API gave out")
    return value


def _page(rows: list[dict[str, Any]], limit: int) -> Response:
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse({"data": rows, "next_cursor": encode_cursor(rows[-1]["id"]) if more else None})


def _wants(request: Request) -> str | None:
    accept = request.headers.get("accept", "")
    if "application/x-ndjson" in accept:
        return "ndjson"
    if "text/csv" in accept:
        return "csv"
    return None


def _stream(what: str, kind: str, chunks: Any) -> Response:
    pieces = FORMATS[what, kind](chunks)
    if kind == "ndjson":
        return StreamingResponse(pieces, media_type="application/x-ndjson")
    return StreamingResponse(
        pieces,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{what}.csv"'},
    )


class ReadAPI:
    def __init__(
        self, store: Any, writer: Writer, mappings: dict[str, CompiledMapping], api_key: str
    ) -> None:
        self.store = store
        self.writer = writer
        self.mappings = mappings
        self.api_key = api_key
        self.sources = sorted(mappings)

    def guard(self, fn: Handler, params: Iterable[str] = ()) -> Handler:
        """Behind the key; only ``params`` as query parameters; path ids of a plausible shape
        (anything else cannot exist: 404 without asking the store)."""
        allowed = tuple(params)

        async def guarded(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not matches(token.strip(), self.api_key):
                return problem_response(
                    Problem(
                        401,
                        "Unauthorized",
                        "Authorization: Bearer <RECEIVER_API_KEY> is required",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                )
            try:
                _check_params(request, allowed)
                for value in request.path_params.values():
                    if not _ID.fullmatch(value):
                        raise Problem(404, "Not Found", "no such id")
                return await fn(request)
            except Problem as p:
                return problem_response(p)

        return guarded

    def routes(self) -> list[Route]:
        g = self.guard
        return [
            Route("/v1/events", g(self.events, EVENT_PARAMS), methods=["GET"]),
            Route("/v1/events/{id}", g(self.event), methods=["GET"]),
            Route("/v1/leads", g(self.leads, LEAD_PARAMS), methods=["GET"]),
            # One route for both methods, so a 405 there names both in its Allow header.
            Route("/v1/leads/{id}", g(self.lead_or_erase), methods=["GET", "DELETE"]),
            Route("/v1/leads/{id}/events", g(self.lead_events, EVENT_FILTERS), methods=["GET"]),
            Route("/v1/erasures/{id}", g(self.erasure), methods=["GET"]),
            Route("/v1/deliveries", g(self.deliveries, DELIVERY_PARAMS), methods=["GET"]),
            Route("/v1/deliveries/{id}", g(self.delivery), methods=["GET"]),
            Route("/v1/deliveries/{id}/replay", g(self.replay_one), methods=["POST"]),
            Route("/v1/replay", g(self.replay_many, DELIVERY_FILTERS), methods=["POST"]),
        ]

    # -- events -------------------------------------------------------------------------
    def _event_query(self, request: Request, lead_id: str | None = None) -> EventQuery:
        since, until = _time(request, "since"), _time(request, "until")
        return EventQuery(
            source=_choice(request, "source", self.sources),
            type=_choice(request, "type", TYPES),
            lead_id=lead_id or _id_param(request, "lead_id"),
            since=since,
            until=until,
        )

    async def _events(self, request: Request, q: EventQuery) -> Response:
        kind = _wants(request)
        if kind:
            return _stream("events", kind, self.store.export_events(q))
        limit = _limit(request)
        # Stored documents go into the page as they are (no decoding, no re-encoding).
        rows = await self.store.list_events_json(q, _cursor(request), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse(
            {
                "data": [msgspec.Raw(doc) for _, doc in rows],
                "next_cursor": encode_cursor(rows[-1][0]) if more else None,
            }
        )

    async def events(self, request: Request) -> Response:
        return await self._events(request, self._event_query(request))

    async def event(self, request: Request) -> Response:
        event = await self.store.get_event(request.path_params["id"])
        if event is None:
            raise Problem(404, "Not Found", "no such event")
        return JSONResponse(event)

    # -- leads --------------------------------------------------------------------------
    async def leads(self, request: Request) -> Response:
        email = request.query_params.get("email")
        q = LeadQuery(
            email_sha256=sha256_hex(email) if email else None,
            source=_choice(request, "source", self.sources),
            updated_since=_time(request, "updated_since"),
        )
        kind = _wants(request)
        if kind:
            return _stream("leads", kind, self.store.export_leads(q))
        limit = _limit(request)
        rows = await self.store.list_lead_records(q, _cursor(request), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse({"data": rows, "next_cursor": encode_cursor(rows[-1].id) if more else None})

    async def lead_or_erase(self, request: Request) -> Response:
        return await (self.erase(request) if request.method == "DELETE" else self.lead(request))

    async def lead(self, request: Request) -> Response:
        lead = await self.store.get_lead(request.path_params["id"])
        if lead is None:
            raise Problem(404, "Not Found", "no such lead")
        return JSONResponse(lead)

    async def lead_events(self, request: Request) -> Response:
        live = await self.store.live_lead_id(request.path_params["id"])
        if live is None:
            raise Problem(404, "Not Found", "no such lead")
        return await self._events(request, self._event_query(request, lead_id=live))

    # -- erasure ------------------------------------------------------------------------
    async def erase(self, request: Request) -> Response:
        """200 with the erasure when nothing is left to purge; 202 when the rows are gone but
        the files still hold old copies that the service purges as soon as it can (follow
        ``Location``). Either way the lead and its events answer 404 from now on."""
        try:
            erasure = await self.store.erase_lead(request.path_params["id"])
        except StorageError as e:
            log.error("erasure not possible now: %s", e)
            raise _storage_unavailable() from None
        if erasure is None:
            raise Problem(404, "Not Found", "no such lead")
        return JSONResponse(
            erasure,
            status_code=200 if erasure.state == "complete" else 202,
            headers={"Location": f"/v1/erasures/{erasure.id}"},
        )

    async def erasure(self, request: Request) -> Response:
        try:
            erasure = await self.store.get_erasure(request.path_params["id"])
        except StorageError:
            raise _storage_unavailable() from None
        if erasure is None:
            raise Problem(404, "Not Found", "no such erasure")
        return JSONResponse(erasure)

    # -- deliveries and replay ----------------------------------------------------------
    def _delivery_query(self, request: Request) -> DeliveryQuery:
        return DeliveryQuery(
            status=_choice(request, "status", STATUSES), source=_choice(request, "source", self.sources)
        )

    async def deliveries(self, request: Request) -> Response:
        limit = _limit(request)
        q = self._delivery_query(request)
        rows = await self.store.list_delivery_records(q, _cursor(request), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse({"data": rows, "next_cursor": encode_cursor(rows[-1].id) if more else None})

    async def delivery(self, request: Request) -> Response:
        record = await self.store.get_delivery_record(request.path_params["id"])
        if record is None:
            raise Problem(404, "Not Found", "no such delivery")
        return JSONResponse(record)

    async def replay_one(self, request: Request) -> Response:
        row = await self.store.raw_delivery(request.path_params["id"])
        if row is None:
            raise Problem(404, "Not Found", "no such delivery")
        return JSONResponse(await replay_delivery(self.mappings, self.writer, row))

    async def replay_many(self, request: Request) -> Response:
        ids = await self.store.delivery_ids(self._delivery_query(request))
        counts: dict[str, int] = {}
        events = 0
        for delivery_id in ids:
            row = await self.store.raw_delivery(delivery_id)
            if row is None:  # erased meanwhile
                continue
            result = await replay_delivery(self.mappings, self.writer, row)
            counts[result.status] = counts.get(result.status, 0) + 1
            events += len(result.events)
        return JSONResponse({"replayed": sum(counts.values()), "by_status": counts, "events": events})
