"""``responses.JSONResponse`` builds a webhook answer in one call when it has no headers
of its own; whatever the arguments, its status, headers and body are those Starlette's
own ``JSONResponse`` gives for the same content (both write compact UTF-8 JSON)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette import responses as starlette

from receiver.responses import JSONResponse

CONTENT: list[Any] = [{}, {"status": "accepted", "delivery_id": "x"}, [1, "é", None], "text", 0]


@pytest.mark.parametrize("content", CONTENT)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"status_code": 202},
        {"status_code": 200, "headers": {"Idempotent-Replayed": "true"}},
        {"status_code": 204},
        {"status_code": 422, "media_type": "application/problem+json"},
        {"media_type": "application/json"},
    ],
)
def test_answers_are_starlettes(content: Any, kwargs: dict[str, Any]) -> None:
    ours = JSONResponse(content, **kwargs)
    theirs = starlette.JSONResponse(content, **kwargs)
    assert ours.status_code == theirs.status_code
    assert sorted(ours.raw_headers) == sorted(theirs.raw_headers)
    assert ours.body == theirs.body
