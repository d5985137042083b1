"""Reading a request body under a size limit and a deadline, deciding 413/408 while streaming."""

from __future__ import annotations

import asyncio

from ..problems import Problem
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
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise too_slow(timeout) from None
    return b"".join(chunks)
