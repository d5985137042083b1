"""What every HTTP answer goes through, as one plain ASGI middleware (one wrapper, so the
hot path pays once): the header-size limit (431 before any work), the security headers,
a last-resort 500 for a bug (logged as where, never what), and the access-log line.

The header limit is enforced first by the HTTP server itself while reading (see
``serving.py``); the check here covers any other ASGI server the app is run under.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import accesslog
from .logs import failure
from .problems import Problem

log = logging.getLogger("receiver")

#: Scope key: the header limit the HTTP server already enforced while reading (serving.py);
#: when it is no larger than this one, the headers are not counted again.
HEADER_LIMIT_KEY = "receiver.header_limit"

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


def problem_message(p: Problem) -> tuple[Message, Message]:
    body = msgspec.json.encode(p.body())
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in p.headers.items()),
    ]
    return (
        {"type": "http.response.start", "status": p.status, "headers": headers},
        {"type": "http.response.body", "body": body},
    )


def internal() -> Problem:
    """The last-resort answer to a bug."""
    return Problem(500, "Internal Server Error", "the request could not be handled")


def unhandled(scope: Scope, e: Exception) -> None:
    """Log a bug: where (method, path) and what failed, never the request's values."""
    log.error(
        "unhandled error: %s %s %s",
        accesslog.printable(str(scope.get("method"))),
        accesslog.printable(str(scope.get("path"))),
        failure(e),
    )


class Edge:
    def __init__(self, app: ASGIApp, max_header_bytes: int = 32 * 1024) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # The read API's answers hold stored data: no cache may keep them.
        extra = [NOSNIFF, NO_STORE] if scope["path"].startswith("/v1/") else [NOSNIFF]
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = [*message.get("headers", ())]
                for h in extra:  # unless the route set its own (the inspector)
                    for k, _ in headers:
                        if k.lower() == h[0]:
                            break
                    else:
                        headers.append(h)
                message["headers"] = headers
            await send(message)

        try:
            if self.headers_too_large(scope):
                await self._answer(send_wrapper, self.too_large())
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as e:
            unhandled(scope, e)
            if not response_started:
                await self._answer(send_wrapper, internal())
        finally:
            if accesslog.log.isEnabledFor(logging.INFO):
                accesslog.write(scope, status, time.perf_counter() - started)

    def headers_too_large(self, scope: Scope) -> bool:
        """Whether the request line and headers exceed the limit (not counted again when
        the HTTP server already enforced one no larger)."""
        if scope.get(HEADER_LIMIT_KEY, self.max_header_bytes + 1) <= self.max_header_bytes:
            return False
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
        return size > self.max_header_bytes

    def too_large(self) -> Problem:
        return Problem(
            431,
            "Request Header Fields Too Large",
            f"the request line and headers exceed {self.max_header_bytes} bytes",
            headers={"Connection": "close"},
        )

    @staticmethod
    async def _answer(send: Send, p: Problem) -> None:
        start, body = problem_message(p)
        await send(start)
        await send(body)


#: Header names an answer may set ``NOSNIFF`` with itself (lower-cased, as sent).
_NOSNIFF_NAME = NOSNIFF[0]


class LeanEdge(Edge):
    """``Edge`` for the ingest edge's lean path (app.py): the app returns its answer (a
    Starlette ``Response``) rather than sending it, and it is sent here, with what
    ``Edge`` adds to every answer, so that no send wrapper (a closure, and a coroutine
    for each message) is made per request. Only ``/hooks/`` paths come here: never a
    ``/v1/`` one (no ``Cache-Control: no-store`` to add). The answer is a plain
    ``Response``: its body is sent whole, and it has no background task (the ingest
    endpoint makes none; a streaming response would need ``Edge``)."""

    def __init__(
        self, respond: Callable[[Scope, Receive], Awaitable[Response]], max_header_bytes: int = 32 * 1024
    ) -> None:
        super().__init__(self._unused, max_header_bytes)
        self.respond = respond

    @staticmethod
    async def _unused(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("LeanEdge answers through respond")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False
        try:
            if self.headers_too_large(scope):
                status, response_started = 431, True
                await self._problem(send, self.too_large())
            else:
                response = await self.respond(scope, receive)
                headers = response.raw_headers
                for k, _ in headers:  # unless the answer set its own
                    if k.lower() == _NOSNIFF_NAME:
                        break
                else:
                    headers = [*headers, NOSNIFF]
                status, response_started = response.status_code, True
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": response.body})
        except Exception as e:
            unhandled(scope, e)
            if not response_started:
                status, response_started = 500, True
                await self._problem(send, internal())
        finally:
            if accesslog.log.isEnabledFor(logging.INFO):
                accesslog.write(scope, status, time.perf_counter() - started)

    @staticmethod
    async def _problem(send: Send, p: Problem) -> None:
        start, body = problem_message(p)
        start["headers"] = [*start["headers"], NOSNIFF]  # a problem sets no such header itself
        await send(start)
        await send(body)
