"""``LeanEdge`` (the ingest edge's lean path) sends what ``Edge`` around an app sending the
same answer sends: the same messages (the security header added unless the answer has
it), the same 431 and 500, the same access-log status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.responses import Response

from receiver import accesslog
from receiver.edge import HEADER_LIMIT_KEY, Edge, LeanEdge


async def _ok(scope: Any, receive: Any) -> Response:
    return Response(b'{"a":1}', status_code=202, media_type="application/json")


async def _own_header(scope: Any, receive: Any) -> Response:
    return Response(b"x", headers={"X-Content-Type-Options": "nosniff", "Retry-After": "1"})


async def _bug(scope: Any, receive: Any) -> Response:
    raise RuntimeError("a bug")


def _as_app(respond: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = await respond(scope, receive)
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    return app


def _run(edge: Any, header: bytes) -> tuple[list[Any], list[int]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks/x",
        "raw_path": b"/hooks/x",
        "query_string": b"",
        "headers": [(b"x-h", header)],
        HEADER_LIMIT_KEY: 10**9,  # counted again: the limit below is smaller
    }
    sent: list[Any] = []
    logged: list[int] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    sink, accesslog.sink = accesslog.sink, lambda fields: logged.append(fields[3])
    level = accesslog.log.level
    accesslog.log.setLevel(logging.INFO)
    try:
        asyncio.run(edge(scope, receive, send))
    finally:
        accesslog.sink = sink
        accesslog.log.setLevel(level)
    return sent, logged


@pytest.mark.parametrize("respond", [_ok, _own_header, _bug])
@pytest.mark.parametrize("header", [b"small", b"a" * 2000])
def test_lean_edge_sends_what_edge_sends(respond: Any, header: bytes) -> None:
    lean = _run(LeanEdge(respond, max_header_bytes=1024), header)
    wrapped = _run(Edge(_as_app(respond), max_header_bytes=1024), header)
    assert lean == wrapped
    sent, logged = lean
    assert len(sent) == 2 and logged == [sent[0]["status"]]
    names = [k for k, _ in sent[0]["headers"]]
    assert [k.lower() for k in names].count(b"x-content-type-options") == 1
    if len(header) > 1024:
        assert sent[0]["status"] == 431
    elif respond is _bug:
        assert sent[0]["status"] == 500
