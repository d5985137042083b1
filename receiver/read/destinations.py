"""``/v1/destinations`` and ``/v1/messages``: see and steer forwarding (receiver/forward).

Behind the same bearer key as the rest of ``/v1``; lists page like the others
(``limit``, opaque ``cursor``, newest first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..forward import Destination, Forwarding
from ..forward.outbox import STATES, epoch
from ..problems import FieldError, Problem
from ..responses import JSONResponse
from ..store.base import StorageError
from .api import _choice, _cursor, _limit, _page

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Guard = Callable[[Handler, Iterable[str]], Handler]
"""``ReadAPI.guard``: behind the key, with the query parameters a call accepts."""
#: The query parameters GET /v1/messages accepts (every other call takes none).
MESSAGE_PARAMS = ("destination", "state", "event_id", "limit", "cursor")


def _unavailable(fn: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except StorageError:
            raise Problem(
                503,
                "Service Unavailable",
                "storage is unavailable; retry shortly",
                headers={"Retry-After": "1"},
            ) from None

    return wrapped


class DestinationsAPI:
    def __init__(self, forwarding: Forwarding | None, guard: Guard) -> None:
        self.forwarding = forwarding
        self.guard = guard
        self.destinations: dict[str, Destination] = forwarding.destinations if forwarding else {}

    def routes(self) -> list[Route]:
        def g(fn: Handler, params: Iterable[str] = ()) -> Handler:
            return self.guard(_unavailable(fn), params)

        return [
            Route("/v1/destinations", g(self.list_destinations), methods=["GET"]),
            Route("/v1/destinations/{name}/retry-failed", g(self.retry_failed), methods=["POST"]),
            Route("/v1/destinations/{name}/enable", g(self.enable), methods=["POST"]),
            Route("/v1/messages", g(self.messages, MESSAGE_PARAMS), methods=["GET"]),
            Route("/v1/messages/{id}", g(self.message), methods=["GET"]),
            Route("/v1/messages/{id}/retry", g(self.retry), methods=["POST"]),
        ]

    def _forwarding(self) -> Forwarding:
        if self.forwarding is None:
            raise Problem(404, "Not Found", "no destinations are configured (RECEIVER_DESTINATIONS_FILE)")
        return self.forwarding

    def _destination(self, request: Request) -> tuple[Forwarding, Destination]:
        forwarding = self._forwarding()
        d = self.destinations.get(request.path_params["name"])
        if d is None:
            raise Problem(404, "Not Found", "no such destination")
        return forwarding, d

    async def _record(self, d: Destination) -> dict[str, Any]:
        forwarding = self._forwarding()
        counts = (await forwarding.outbox.counts()).get(d.name, {})
        return self._shape(d, counts, (await forwarding.outbox.disabled()).get(d.name))

    def _shape(
        self, d: Destination, counts: dict[str, Any], disabled: dict[str, str] | None
    ) -> dict[str, Any]:
        oldest = counts.get("oldest_pending_at")
        record: dict[str, Any] = {
            "name": d.name,
            "url": d.shown_url,
            "format": d.format,
            "sources": sorted(d.sources) if d.sources is not None else None,
            "types": list(d.types) if d.types is not None else None,
            "enabled": disabled is None,
            "disabled_at": disabled["disabled_at"] if disabled else None,
            "disabled_reason": disabled["reason"] if disabled else None,
            "messages": {s: counts.get(s, 0) for s in STATES},
            "oldest_pending_at": oldest,
            "oldest_pending_age_seconds": round(max(0.0, time.time() - epoch(oldest)), 3) if oldest else None,
        }
        if self.forwarding is not None:
            record.update(self.forwarding.forwarder.lane_state(d.name))
        return record

    # -- destinations --------------------------------------------------------------------------
    async def list_destinations(self, request: Request) -> Response:
        if self.forwarding is None:
            return JSONResponse({"data": []})
        counts = await self.forwarding.outbox.counts()
        disabled = await self.forwarding.outbox.disabled()
        return JSONResponse(
            {
                "data": [
                    self._shape(d, counts.get(n, {}), disabled.get(n)) for n, d in self.destinations.items()
                ]
            }
        )

    async def retry_failed(self, request: Request) -> Response:
        forwarding, d = self._destination(request)
        n = await forwarding.outbox.retry_failed(d.name, d.max_age)
        forwarding.forwarder.wake()
        return JSONResponse({"destination": d.name, "retried": n})

    async def enable(self, request: Request) -> Response:
        forwarding, d = self._destination(request)
        await forwarding.outbox.enable(d.name)
        forwarding.forwarder.enabled(d.name)
        return JSONResponse(await self._record(d))

    # -- messages ------------------------------------------------------------------------------
    async def messages(self, request: Request) -> Response:
        destination = _choice(request, "destination", sorted(self.destinations))
        state = _choice(request, "state", STATES)
        limit = _limit(request)
        before = _cursor(request)
        if self.forwarding is None:
            return JSONResponse({"data": [], "next_cursor": None})
        event_id = request.query_params.get("event_id") or None
        rows = await self.forwarding.outbox.list_messages(destination, state, event_id, before, limit + 1)
        return _page(rows, limit)

    async def message(self, request: Request) -> Response:
        record = await self._forwarding().outbox.get_message(request.path_params["id"])
        if record is None:
            raise Problem(404, "Not Found", "no such message")
        return JSONResponse(record)

    async def retry(self, request: Request) -> Response:
        forwarding = self._forwarding()
        record = await forwarding.outbox.get_message(request.path_params["id"])
        if record is None:
            raise Problem(404, "Not Found", "no such message")
        d = self.destinations.get(record["destination"])
        if d is None:
            raise Problem(
                409,
                "Conflict",
                "the message's destination is no longer configured",
                [FieldError("destination", f"{record['destination']!r} is not in the destinations file")],
            )
        if record["state"] == "delivered" or not await forwarding.outbox.retry(record["id"], d.max_age):
            raise Problem(
                409,
                "Conflict",
                "the message was delivered; to send its event again use `receiver forward`",
                [FieldError("state", "is delivered")],
            )
        forwarding.forwarder.wake()
        return JSONResponse(await forwarding.outbox.get_message(record["id"]))
