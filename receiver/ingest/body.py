"""Reading a request body under a size limit and a deadline, deciding 413/408 while streaming."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect

from ..problems import Problem
from .deadline import deadlines
from .request import IncomingRequest


def too_large(limit: int) -> Problem:
    return Problem(413, "Content Too Large", f"the body exceeds the limit of {limit} bytes")


def too_slow(seconds: float) -> Problem:
    # Connection: close, so a client that trickles its body cannot keep the connection.
    return Problem(
        408,
        "Request Timeout",
        f"the body did not arrive within {seconds:g} seconds",
        headers={"Connection": "close"},
    )


async def read_body(request: IncomingRequest, limit: int, timeout: float = 30.0) -> bytes:
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive  # the ASGI messages, without an async generator per request
    # Under ``receiver serve`` (serving.py), what has arrived already is taken without a
    # wait: a body that came whole needs no deadline.
    ready = getattr(getattr(receive, "__self__", None), "receive_ready", None)
    message = ready() if ready is not None else None
    if message is not None:
        chunk: bytes = message["body"]
        size = len(chunk)
        if size > limit:
            raise too_large(limit)
        if not message["more_body"]:
            return chunk
        if chunk:
            chunks.append(chunk)
    task = deadlines.start(timeout)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise too_large(limit)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()
    except asyncio.CancelledError:
        if deadlines.finish(task):
            raise too_slow(timeout) from None
        raise
    finally:
        # A late read is cancelled only while it waits for a chunk (the except above).
        deadlines.finish(task)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
