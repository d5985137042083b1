"""JSON and problem+json responses (msgspec-encoded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.background import BackgroundTask
from starlette.responses import Response

from .problems import Problem

_encode = msgspec.json.encode


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if (
            headers
            or media_type is not None
            or background is not None
            or status_code < 200
            or status_code in (204, 304)
        ):
            super().__init__(content, status_code, headers, media_type, background)
            return
        # Every webhook answer without headers of its own: Starlette's steps, ``render``
        # and ``init_headers`` below, in one call.
        self.status_code = status_code
        self.background = None
        body = self.body = _encode(content)
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]

    def render(self, content: Any) -> bytes:
        return _encode(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # An answer built by ``super().__init__`` without headers of its own (the others
        # skip this: see above): the two headers Starlette's general version would add,
        # without its checks for what cannot happen without headers.
        if (
            headers
            or self.media_type != JSONResponse.media_type
            or self.status_code < 200
            or self.status_code in (204, 304)
        ):
            super().init_headers(headers)
            return
        length = b"%d" % len(self.body)
        self.raw_headers = [(b"content-length", length), (b"content-type", b"application/json")]


def problem_response(p: Problem) -> Response:
    return Response(
        _encode(p.body()),
        status_code=p.status,
        media_type="application/problem+json",
        headers=p.headers,
    )
