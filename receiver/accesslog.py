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

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Scope

log = logging.getLogger("receiver.access")
NAME = log.name

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
    if query.find(b"&") < 0:  # one parameter (the usual ``?token=…``)
        name = query.partition(b"=")[0]
        return f"[{name.decode('ascii')}]" if _NAME.fullmatch(name) else "[?]"
    names = {p.partition(b"=")[0] for p in query.split(b"&") if p}
    shown = sorted({n.decode("ascii") if _NAME.fullmatch(n) else "?" for n in names})
    if len(shown) > _MAX_NAMES:
        shown = [*shown[:_MAX_NAMES], "…"]
    return "[" + ",".join(shown) + "]"


Fields = tuple[Any, Any, Any, int, float, Any, Any, Any]
"""What a line is made of, as taken from the request: (when, method, raw path or path,
status, seconds, source, delivery, raw query)."""

#: Where lines go when ``logs.setup`` configured the process (``receiver serve``): the
#: fields are queued as they are and the line is made and written by the log thread, so a
#: request pays for a queue put. Otherwise (an embedding app, the tests): ``logging``.
sink: Callable[[Fields], None] | None = None


def write(scope: Scope, status: int, seconds: float) -> None:
    """Log one request (callers check ``log.isEnabledFor(logging.INFO)`` first)."""
    fields = (
        time.time(),
        scope.get("method", "-"),
        scope.get("raw_path") or scope.get("path", ""),
        status,
        seconds,
        scope.get(SOURCE_KEY, "-"),
        scope.get(DELIVERY_KEY, "-"),
        scope.get("query_string", b""),
    )
    if sink is not None:
        sink(fields)
    else:
        log.info("%s", message(fields))


#: Methods shown as they are (``printable`` leaves them so): no test per line.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def message(fields: Fields) -> str:
    _, method, path, status, seconds, source, delivery, query = fields
    path = path.decode("latin-1") if path.__class__ is bytes else str(path)
    if not (path.isascii() and path.isprintable()):
        path = printable(path)
    return (
        f"{method if method in _METHODS else printable(str(method))} {path} {status} {seconds * 1000:.1f}ms"
        f" source={source} delivery={delivery} query={query_names(query) if query else '[]'}"
    )


#: ``%03d`` of every millisecond.
_MILLIS = tuple(f"{i:03d}" for i in range(1000))


def line(fields: Fields) -> str:
    """The whole line, as the log's formatter (``logs.FORMAT``) writes any record (its
    milliseconds as ``logging.LogRecord`` takes them from the time)."""
    when = fields[0]
    second = int(when)
    return f"{_stamp(second)},{_MILLIS[int((when - second) * 1000)]} INFO {NAME} {message(fields)}\n"


@functools.lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    """The local date and time of a second (lines written together share theirs)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
