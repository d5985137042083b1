"""``/v1``: events, leads, deliveries, replay, erasure; behind ``Authorization: Bearer``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..credentials import matches
from ..mapping import CompiledMapping
from ..mapping.transforms import sha256_hex
from ..problems import FieldError, Problem
from ..replay import replay_delivery
from ..responses import JSONResponse, problem_response
from ..store.base import DeliveryQuery, EventQuery, LeadQuery
from ..writer import Writer
from .export import FORMATS

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
MAX_LIMIT = 1000
STATUSES = ("accepted", "unmapped", "rejected")


def _bad(name: str, message: str) -> Problem:
    return Problem(400, "Bad Request", f"invalid query parameter {name!r}", [FieldError(name, message)])


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise _bad(name, "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z") from None
    if t.tzinfo is None:
        raise _bad(name, "must carry a time zone (Z or an offset)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
    if len(value) != 36:
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

    def guard(self, fn: Handler) -> Handler:
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
                return await fn(request)
            except Problem as p:
                return problem_response(p)

        return guarded

    def routes(self) -> list[Route]:
        g = self.guard
        return [
            Route("/v1/events", g(self.events), methods=["GET"]),
            Route("/v1/events/{id}", g(self.event), methods=["GET"]),
            Route("/v1/leads", g(self.leads), methods=["GET"]),
            Route("/v1/leads/{id}", g(self.lead), methods=["GET"]),
            Route("/v1/leads/{id}", g(self.erase), methods=["DELETE"]),
            Route("/v1/leads/{id}/events", g(self.lead_events), methods=["GET"]),
            Route("/v1/deliveries", g(self.deliveries), methods=["GET"]),
            Route("/v1/deliveries/{id}", g(self.delivery), methods=["GET"]),
            Route("/v1/deliveries/{id}/replay", g(self.replay_one), methods=["POST"]),
            Route("/v1/replay", g(self.replay_many), methods=["POST"]),
        ]

    # -- events -------------------------------------------------------------------------
    def _event_query(self, request: Request, lead_id: str | None = None) -> EventQuery:
        since, until = _time(request, "since"), _time(request, "until")
        return EventQuery(
            source=_choice(request, "source", self.sources),
            type=request.query_params.get("type") or None,
            lead_id=lead_id or request.query_params.get("lead_id") or None,
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

    async def erase(self, request: Request) -> Response:
        if not await self.store.erase_lead(request.path_params["id"]):
            raise Problem(404, "Not Found", "no such lead")
        return Response(status_code=204)

    # -- deliveries and replay ----------------------------------------------------------
    def _delivery_query(self, request: Request) -> DeliveryQuery:
        return DeliveryQuery(
            status=_choice(request, "status", STATUSES), source=_choice(request, "source", self.sources)
        )

    async def deliveries(self, request: Request) -> Response:
        limit = _limit(request)
        rows = await self.store.list_deliveries(self._delivery_query(request), _cursor(request), limit + 1)
        return _page(rows, limit)

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
