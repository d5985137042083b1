"""The ASGI application: wiring of mappings, credentials, store, writer and routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Settings
from .credentials import load_credentials, required
from .edge import Edge, LeanEdge
from .files import secure_store_files
from .forward import Forwarding
from .ingest.endpoint import Ingest, build_sources
from .mapping import load_dir
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .openapi import build_openapi
from .problems import Problem
from .read.api import ReadAPI
from .read.destinations import DestinationsAPI
from .responses import JSONResponse, problem_response
from .service import Service, make_store
from .store.base import StorageError
from .store.readiness import Readiness
from .ui import inspector
from .version import __version__
from .writer import Writer

log = logging.getLogger("receiver")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    mappings = load_dir(settings.mappings_dir)
    secure_store_files(settings.data_dir, settings.sqlite_path)
    credentials = load_credentials(settings.data_dir, settings.env, required(mappings))
    store = make_store(settings)
    readiness = Readiness(store)
    metrics = Metrics(lambda: writer.depth)
    forwarding = Forwarding.from_settings(settings, store, sorted(mappings), metrics, lambda: writer.depth)
    writer = Writer(
        store,
        settings.queue_size,
        settings.batch_max,
        route=forwarding.router.route if forwarding else None,
        committed=forwarding.forwarder.wake if forwarding else None,
    )
    service = Service(settings, mappings, credentials, store, writer, metrics, forwarding)
    ingest = Ingest(
        build_sources(mappings, credentials, settings.dedup_window_seconds),
        writer,
        metrics,
        settings.max_body_bytes,
        settings.max_events_per_delivery,
        settings.body_timeout_seconds,
    )
    read_api = ReadAPI(store, writer, mappings, credentials.get("RECEIVER_API_KEY"))
    openapi = build_openapi(mappings, __version__, list(forwarding.destinations) if forwarding else [])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await readiness.check()  # a real write, bounded in time
        except StorageError as e:
            return problem_response(
                Problem(
                    503,
                    "Service Unavailable",
                    f"storage not writable: {e}",
                    headers={"Retry-After": "1"},
                )
            )
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        if forwarding is not None:
            with contextlib.suppress(StorageError):
                await forwarding.refresh_metrics(metrics)
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi_endpoint(request: Request) -> Response:
        return JSONResponse(openapi)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await writer.start()
        if forwarding is not None:
            await forwarding.forwarder.start()
        try:
            yield
        finally:
            if forwarding is not None:
                await forwarding.forwarder.stop()
            await writer.stop()
            await store.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        p = Problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail))
        if exc.headers:
            p.headers.update(exc.headers)
        return problem_response(p)

    routes = [
        Route("/hooks/{source}", ingest.handle, methods=ALL_METHODS),
        Route("/hooks/{source}/{rest:path}", ingest.handle, methods=ALL_METHODS),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        *read_api.routes(),
        *DestinationsAPI(forwarding, read_api.guard).routes(),
        inspector(service),
    ]
    app = Receiver(
        LeanEdge(ingest.respond, max_header_bytes=settings.max_header_bytes),
        routes=routes,
        lifespan=lifespan,
        # Any other exception is answered and logged by Edge (never re-raised to the server,
        # whose own log would print the exception's message).
        exception_handlers={HTTPException: http_error},
    )
    app.state.service = service
    app.add_middleware(Edge, max_header_bytes=settings.max_header_bytes)
    return app


class Receiver(Starlette):
    """The app, with a lean path for webhooks: a request to ``/hooks/{source}[/…]`` goes
    straight to the ingest edge (behind ``LeanEdge``, which does what ``Edge`` does for
    every answer), not through Starlette's exception layers, router and ``Request``; the
    routes above still describe it, and anything the lean path does not take (another
    method, a mounted root path) goes the usual way."""

    def __init__(self, hooks: ASGIApp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hooks = hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith("/hooks/")
            and scope["path"][7:8] not in ("", "/")
            and scope["method"] in ALL_METHODS
            and not scope.get("root_path")
        ):
            scope["app"] = self
            await self.hooks(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


_TITLES: dict[int, str] = {404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request"}


def service_of(app: Any) -> Service:
    svc: Service = app.state.service
    return svc
