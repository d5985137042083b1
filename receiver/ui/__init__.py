"""The inspector: server-rendered pages at /ui/ to watch, search, replay and erase.

Read-only except three POSTs (replay, erase, sign-out), each behind the session's CSRF
token. Pages read through the same store interface as the read API.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..service import Service
from . import auth, deliveries, events, leads, mappings
from .web import HERE, PREFIX, UI, PageError, SecurityHeaders

__all__ = ["inspector"]


def inspector(service: Service) -> Mount:
    """The /ui mount for the application's routes."""
    ui = UI(service)

    async def home(request: Request) -> Response:
        return await auth.home(ui, request)

    async def sign_in(request: Request) -> Response:
        try:
            return await auth.sign_in(ui, request)
        except PageError as e:
            return ui.error(request, e, None)

    async def unknown(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        e = PageError(404, "Not found", "The inspector has no such page.")
        await ui.error(request, e, ui.session(request))(scope, receive, send)

    page, action = ui.page, ui.action
    router = Router(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/", sign_in, methods=["POST"]),
            Route("/sign-out", action(auth.sign_out), methods=["POST"]),
            Route("/deliveries", page(deliveries.deliveries), methods=["GET"]),
            Route("/deliveries/live", page(deliveries.live_rows, fragment=True), methods=["GET"]),
            Route("/deliveries/{id}", page(deliveries.delivery), methods=["GET"]),
            Route("/deliveries/{id}/replay", action(deliveries.replay), methods=["POST"]),
            Route("/events", page(events.events), methods=["GET"]),
            Route("/events/{id}", page(events.event), methods=["GET"]),
            Route("/leads", page(leads.leads), methods=["GET"]),
            Route("/leads/search", action(leads.search), methods=["POST"]),
            Route("/leads/{id}", page(leads.lead), methods=["GET"]),
            Route("/leads/{id}/erase", action(leads.erase), methods=["POST"]),
            Route("/mappings", page(mappings.mappings), methods=["GET"]),
            Route("/mappings/playground", action(mappings.playground), methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ],
        default=unknown,
    )
    return Mount(PREFIX, app=SecurityHeaders(router))
