"""The inspector's plumbing: templates, the session guard, CSRF, security headers, errors.

Every page handler is ``async (ui, request, session) -> Response``; ``UI.page`` and
``UI.action`` wrap it with what every page needs, so no handler can forget a check.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..credentials import API_KEY_SETTING
from ..ingest.body import read_body
from ..mapping import CompiledMapping
from ..problems import Problem
from ..service import Service
from ..store.base import StorageError, Store
from ..writer import Writer
from .describe import MappingView, describe
from .session import COOKIE, Session, Sessions

log = logging.getLogger("receiver.ui")
HERE = Path(__file__).resolve().parent
PREFIX = "/ui"
#: Largest form the inspector reads (the playground's body field included).
FORM_OVERHEAD = 64 * 1024

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Every answer under /ui/ carries the headers; pages are never cached (they show
    personal data), the script and style sheet may be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith(f"{PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in HEADERS if k not in names]
                if not static:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class PageError(Exception):
    """An answer other than the page: rendered as the error page with this status."""

    def __init__(self, status: int, title: str, message: str = "", headers: dict[str, str] | None = None):
        super().__init__(message or title)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


def not_found(what: str, ident: str) -> PageError:
    return PageError(404, "Not found", f"There is no {what} with the id {ident}.")


def is_web_url(value: Any) -> bool:
    """Only http(s) URLs become links: a vendor value ``javascript:…`` stays text."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped; no template marks data |safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["web_url"] = is_web_url
    env.filters["query"] = lambda params: urlencode({k: v for k, v in params.items() if v})
    return env


def _asset_version() -> str:
    """Changes with the script and style sheet, so a browser never runs a stale copy."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


Handler = Callable[["UI", Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class UI:
    """What the pages share: the service's parts, the session keys, the templates."""

    def __init__(self, service: Service) -> None:
        self.store: Store = service.store
        self.writer: Writer = service.writer
        self.mappings: dict[str, CompiledMapping] = service.mappings
        self.sources = sorted(service.mappings)
        self.secrets: Mapping[str, str] = service.credentials.values
        self.api_key = service.credentials.get(API_KEY_SETTING)
        self.public_url = (service.settings.env.get("RECEIVER_PUBLIC_URL") or "").rstrip("/")
        self.max_body = service.settings.max_body_bytes
        self.sessions = Sessions(self.api_key)
        env = _environment()
        slots = {name: i % 6 for i, name in enumerate(self.sources)}
        env.globals["source_slot"] = lambda name: slots.get(name, 0)
        env.globals["asset_version"] = _asset_version()
        self.templates = Jinja2Templates(env=env)
        self.described = {name: describe(m) for name, m in service.mappings.items()}

    def event_roots(self, source: str) -> list[list[str]]:
        view: MappingView | None = self.described.get(source)
        return view.event_roots if view else [[]]

    def base_url(self, request: Request) -> str:
        return self.public_url or str(request.base_url).rstrip("/")

    # -- rendering -----------------------------------------------------------------------
    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        session: Session | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        ctx = {"session": session, "sources": self.sources, "nav": "", **context}
        return self.templates.TemplateResponse(request, template, ctx, status_code=status, headers=headers)

    def error(self, request: Request, e: PageError, session: Session | None) -> Response:
        ctx = {"title": e.title, "message": e.message, "status": e.status}
        return self.render(request, "error.html", ctx, session, e.status, e.headers)

    # -- guards --------------------------------------------------------------------------
    def session(self, request: Request) -> Session | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    def sign_in_redirect(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/?{urlencode({'next': target})}", status_code=303)

    async def guarded(self, handler: Handler, request: Request, session: Session) -> Response:
        try:
            return await handler(self, request, session)
        except PageError as e:
            return self.error(request, e, session)
        except Problem as p:
            return self.error(request, PageError(p.status, p.title, p.detail, p.headers), session)
        except StorageError:
            log.warning("storage unavailable while rendering %s", request.url.path)
            busy = PageError(
                503,
                "Storage unavailable",
                "The store cannot answer now; try again shortly.",
                {"Retry-After": "1"},
            )
            return self.error(request, busy, session)

    def page(self, handler: Handler, fragment: bool = False) -> Endpoint:
        """A GET page: signed in, or sent to the sign-in form (and back afterwards). A
        fragment (fetched by a script) answers 401 instead of a redirect."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                if fragment:
                    return Response("sign in again", status_code=401, media_type="text/plain")
                return self.sign_in_redirect(request)
            return await self.guarded(handler, request, session)

        return endpoint

    def action(self, handler: Handler) -> Endpoint:
        """A POST: signed in and carrying the session's CSRF token (403 otherwise)."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return RedirectResponse(f"{PREFIX}/", status_code=303)
            try:
                form = await self.form(request)
            except PageError as e:
                return self.error(request, e, session)
            if not self.sessions.csrf_ok(session, form.get("csrf")):
                forbidden = PageError(
                    403, "Forbidden", "The form was stale or not sent from this inspector. Reload and retry."
                )
                return self.error(request, forbidden, session)
            request.state.form = form
            return await self.guarded(handler, request, session)

        return endpoint

    async def form(self, request: Request) -> dict[str, str]:
        """A url-encoded form, under the body limit (the playground carries a whole body)."""
        if hasattr(request.state, "form"):
            kept: dict[str, str] = request.state.form
            return kept
        try:
            raw = await read_body(request, self.max_body * 3 + FORM_OVERHEAD)
        except Problem as p:
            raise PageError(p.status, p.title, p.detail) from None
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise PageError(400, "Bad request", "The form is not valid UTF-8.") from None
        form = dict(pairs)
        request.state.form = form
        return form


# -- query parameters of the list pages (bad values are reported on the page, not fatal) ----
#: An id as the store hands them out (UUIDv7 today; kept loose, ids are opaque to the UI).
ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.:-]{0,99}$")


class Params:
    def __init__(self, request: Request) -> None:
        self.query = request.query_params
        self.errors: list[str] = []

    def choice(self, name: str, allowed: list[str] | tuple[str, ...]) -> str:
        value = self.query.get(name, "")
        if value and value not in allowed:
            self.errors.append(f"{name} must be one of {', '.join(allowed)}; the filter was left out.")
            return ""
        return value

    def pattern(self, name: str, regex: re.Pattern[str], what: str) -> str:
        value = self.query.get(name, "").strip()
        if value and not regex.match(value):
            self.errors.append(f"{name} must be {what}; the filter was left out.")
            return ""
        return value

    def cursor(self) -> str | None:
        return self.pattern("before", ID, "an id from a 'next page' link") or None
