"""The access log: one line per request, with nothing a request carried in its values.

A line holds the method, the path as sent (percent-encoded, so ``%0a`` stays three
characters; anything else unprintable is escaped as ``\\xNN``), the status, the
duration, the source and delivery id when there is one, and the sorted names of the
query parameters (never their values). No client address, no headers, no body.
Uvicorn's own access log prints the raw query string (``?token=…``), so it is off.

    GET /v1/events 200 1.2ms source=- delivery=- query=[cursor,limit]
    POST /hooks/kartra 202 3.4ms source=kartra delivery=0190c3a5-… query=[token]
"""

from __future__ import annotations

import logging
import re

from starlette.types import Scope

log = logging.getLogger("receiver.access")

#: Scope keys the ingest edge fills in for the line (see ingest/endpoint.py).
SOURCE_KEY = "receiver.source"
DELIVERY_KEY = "receiver.delivery_id"

#: A query parameter name shown as is; anything else (an email used as a name, say) is "?".
_NAME = re.compile(rb"[A-Za-z0-9_.\[\]-]{1,40}")
_MAX_NAMES = 20


def printable(text: str) -> str:
    """``text`` with every character that could end or forge a line escaped."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isascii() and c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def query_names(query: bytes) -> str:
    if not query:
        return "[]"
    names = {p.partition(b"=")[0] for p in query.split(b"&") if p}
    shown = sorted({n.decode("ascii") if _NAME.fullmatch(n) else "?" for n in names})
    if len(shown) > _MAX_NAMES:
        shown = [*shown[:_MAX_NAMES], "…"]
    return "[" + ",".join(shown) + "]"


def write(scope: Scope, status: int, seconds: float) -> None:
    """Log one request (callers check ``log.isEnabledFor(logging.INFO)`` first)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
    log.info(
        "%s %s %d %.1fms source=%s delivery=%s query=%s",
        printable(str(scope.get("method", "-"))),
        printable(path),
        status,
        seconds * 1000,
        scope.get(SOURCE_KEY, "-"),
        scope.get(DELIVERY_KEY, "-"),
        query_names(scope.get("query_string", b"")),
    )
