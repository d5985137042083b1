"""Access log as a plain ASGI middleware, with credentials redacted.

Uvicorn's own access log prints the raw query string (``?token=…``), so it is turned
off and this one is used: method, path, redacted query, status, duration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("receiver.access")
REDACTED_PARAMS = frozenset({"token", "app_key", "api_key", "key", "cid"})


def redact_query(query: bytes, secret: frozenset[str] = REDACTED_PARAMS) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return "?" + urlencode([(k, "***" if k.lower() in secret else v) for k, v in pairs])


class AccessLog:
    def __init__(self, app: ASGIApp, secret_query: Iterable[str] = ()) -> None:
        """``secret_query``: query parameters that carry a credential (every mapping's
        ``query:`` locations), redacted beside the usual names."""
        self.app = app
        self.secret = REDACTED_PARAMS | {name.lower() for name in secret_query}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("-", 0)
                log.info(
                    '%s "%s %s%s" %d %.1fms',
                    client[0],
                    scope["method"],
                    scope["path"],
                    redact_query(scope.get("query_string", b""), self.secret),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
