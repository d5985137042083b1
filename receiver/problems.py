"""RFC 9457 problem details, and the exceptions that become them."""

from __future__ import annotations

from typing import Any

import msgspec

#: Most field errors one problem lists (and one rejected delivery stores): an answer stays
#: small whatever the body; the problem says how many were left out.
MAX_ERRORS = 50


class FieldError(msgspec.Struct, frozen=True):
    """One offending field: a JSON Pointer into the event as the vendor documents it."""

    path: str
    message: str


def bounded(errors: list[FieldError]) -> list[FieldError]:
    """At most ``MAX_ERRORS`` errors, the last one saying how many more there were."""
    if len(errors) <= MAX_ERRORS:
        return errors
    omitted = len(errors) - (MAX_ERRORS - 1)
    return [*errors[: MAX_ERRORS - 1], FieldError("", f"and {omitted} more errors, not listed")]


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

    @property
    def omitted(self) -> int:
        """Errors beyond ``MAX_ERRORS``, not listed in the answer."""
        return max(0, len(self.errors) - MAX_ERRORS)

    @property
    def listed(self) -> list[FieldError]:
        return self.errors[:MAX_ERRORS]

    def body(self) -> dict[str, Any]:
        slug = self.title.lower().replace(" ", "-")
        out: dict[str, Any] = {
            "type": f"https://receiver.dev/problems/{slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [{"path": e.path, "message": e.message} for e in self.listed],
        }
        if self.omitted:
            out["detail"] = f"{self.detail} ({MAX_ERRORS} errors listed, {self.omitted} more left out)"
            out["errors_omitted"] = self.omitted
        return out


def bad_request(detail: str, errors: list[FieldError] | None = None) -> Problem:
    return Problem(400, "Bad Request", detail, errors)


def unprocessable(detail: str, errors: list[FieldError]) -> Problem:
    return Problem(422, "Unprocessable Content", detail, errors)
