"""A webhook request as the ingest edge reads it, straight from the ASGI scope.

``/hooks/*`` does not go through Starlette's router and ``Request``: the app hands it to
the ingest edge with this object (see ``app.Receiver``). Headers and the query are
decoded once, into what the edge looks up; the semantics are Starlette's (a header's
first value wins, a query parameter's last), so both paths answer alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, overload
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope


class HeadersView(Protocol):
    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def items(self) -> Any: ...


class QueryView(Protocol):
    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def multi_items(self) -> list[tuple[str, str]]: ...


class IncomingRequest(Protocol):
    """What the ingest edge reads of a request: a Starlette ``Request`` or a ``HookRequest``."""

    @property
    def scope(self) -> Scope: ...

    @property
    def method(self) -> str: ...

    @property
    def path_params(self) -> dict[str, Any]: ...

    @property
    def headers(self) -> HeadersView: ...

    @property
    def query_params(self) -> QueryView: ...

    @property
    def receive(self) -> Receive: ...


_NAMES: dict[bytes, str] = {}
"""Header names as sent -> decoded and lower-cased: the same few names come with every
request. Names only (never a value), and at most ``_MAX_NAMES`` of them (the first seen)."""
_MAX_NAMES = 256


def _name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[raw] = name
    return name


class Headers:
    """Decoded once: every (name, value) pair in order, and the first value of each name."""

    __slots__ = ("_first", "_pairs")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        names = _NAMES
        self._pairs = [(names[k] if k in names else _name(k), v.decode("latin-1")) for k, v in raw]
        # Built from the last pair to the first, so that a name's first value is the one kept.
        self._first: dict[str, str] = dict(reversed(self._pairs))

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._first.get(key.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return self._pairs

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._pairs)


class Query:
    __slots__ = ("_last", "_pairs")

    def __init__(self, raw: bytes) -> None:
        self._pairs = _pairs(raw.decode("latin-1")) if raw else []
        self._last = dict(self._pairs)

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._last.get(key, default)

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


def _pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``; a query with nothing to decode (no
    ``%``, no ``+``: the usual ``token=…``) is split here, without its Python loop of
    unquoting each name and value."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    out = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            out.append((name, value))
    return out


class HookRequest:
    __slots__ = ("_query", "headers", "method", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive, path_params: dict[str, str]) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path_params = path_params
        self.headers = Headers(scope["headers"])
        self.receive = receive
        self._query: Query | None = None

    @property
    def query_params(self) -> Query:
        if self._query is None:
            self._query = Query(self.scope.get("query_string", b""))
        return self._query
