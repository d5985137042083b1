"""RFC 9457 problem details, and the exceptions that become them."""

from __future__ import annotations

from typing import Any

import msgspec


class FieldError(msgspec.Struct, frozen=True):
    """One offending field: a JSON Pointer into the event as the vendor documents it."""

    path: str
    message: str


class Problem(Exception):
    """An answer that is not a success: status, title, detail, offending fields."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        slug = self.title.lower().replace(" ", "-")
        return {
            "type": f"https://receiver.dev/problems/{slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [{"path": e.path, "message": e.message} for e in self.errors],
        }


def bad_request(detail: str, errors: list[FieldError] | None = None) -> Problem:
    return Problem(400, "Bad Request", detail, errors)


def unprocessable(detail: str, errors: list[FieldError]) -> Problem:
    return Problem(422, "Unprocessable Content", detail, errors)
