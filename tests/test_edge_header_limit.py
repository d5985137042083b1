"""The edge's header limit: counted again unless the HTTP server already enforced one no
larger (serving.py marks the scope with the limit it enforced)."""

from __future__ import annotations

import asyncio
from typing import Any

from receiver.edge import HEADER_LIMIT_KEY, Edge


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _status(scope_extra: dict[str, Any], limit: int = 1024) -> tuple[int, list[Any]]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"x-big", b"a" * 2000)],
        **scope_extra,
    }
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(Edge(_ok, max_header_bytes=limit)(scope, receive, send))
    return sent[0]["status"], sent[0]["headers"]


def test_headers_are_counted_without_a_server_limit_or_with_a_larger_one() -> None:
    assert _status({})[0] == 431
    assert _status({HEADER_LIMIT_KEY: 4096})[0] == 431


def test_headers_the_server_counted_under_the_same_limit_are_not_counted_again() -> None:
    status, headers = _status({HEADER_LIMIT_KEY: 1024})
    assert status == 200
    assert (b"x-content-type-options", b"nosniff") in headers
