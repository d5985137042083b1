"""Signing in with the read-API key, and out again."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..credentials import matches
from .overview import overview
from .session import COOKIE, Session
from .web import PREFIX, UI


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a page of the inspector itself."""
    if not target or not target.startswith(PREFIX + "/") or "\\" in target or "//" in target:
        return PREFIX + "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in target):
        return PREFIX + "/"
    return target


async def home(ui: UI, request: Request) -> Response:
    """``/ui/``: the overview when signed in, else the sign-in form."""
    session = ui.session(request)
    if session is None:
        ctx = {"title": "Sign in", "error": "", "next": safe_next(request.query_params.get("next"))}
        return ui.render(request, "signin.html", ctx, None)
    return await ui.guarded(overview, request, session)


async def sign_in(ui: UI, request: Request) -> Response:
    form = await ui.form(request)
    target = safe_next(form.get("next"))
    if not matches(form.get("api_key") or None, ui.api_key):
        ctx = {"title": "Sign in", "error": "That key is not the read-API key.", "next": target}
        return ui.render(request, "signin.html", ctx, None, status=401)
    cookie, _ = ui.sessions.issue()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=ui.sessions.lifetime,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def sign_out(ui: UI, request: Request, session: Session) -> Response:
    response = RedirectResponse(PREFIX + "/", status_code=303)
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
