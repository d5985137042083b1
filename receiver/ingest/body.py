"""Reading a request body under a size limit, deciding 413 while streaming."""

from __future__ import annotations

from starlette.requests import Request

from ..problems import Problem


def too_large(limit: int) -> Problem:
    return Problem(413, "Content Too Large", f"the body exceeds the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
