"""JSON and problem+json responses (msgspec-encoded)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from .problems import Problem

_encode = msgspec.json.encode


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


def problem_response(p: Problem) -> Response:
    return Response(
        _encode(p.body()),
        status_code=p.status,
        media_type="application/problem+json",
        headers=p.headers,
    )
