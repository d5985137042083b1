"""How a route answers: the receiver's own answers (docs/webhooks.md) or a vendor's.

The style is chosen per route in the mapping file; the set of styles is closed.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..mapping.spec import Answer
from ..problems import Problem
from ..responses import JSONResponse, problem_response

#: Every duplicate answer carries it, whatever the answer's shape (a vendor's own
#: ``{"success": true}`` included), so a client can tell a replayed answer.
REPLAYED = {"Idempotent-Replayed": "true"}
#: Longest vendor value echoed back in an answer (an answer stays small whatever the body).
_ECHO_MAX = 256


def success(answer: Answer, body: dict[str, Any], duplicate: bool, document: Any) -> Response:
    headers = REPLAYED if duplicate else None
    if answer.style == "success_flag":
        out: dict[str, Any] = {"success": True, "message": answer.message or "OK"}
        if isinstance(document, dict):
            for name in answer.echo:
                value = document.get(name)
                if value in (None, ""):
                    continue
                if isinstance(value, str) and len(value) > _ECHO_MAX:
                    value = value[:_ECHO_MAX] + "…"
                elif not isinstance(value, str | int | float | bool):
                    continue
                out[name] = value
        return JSONResponse(out, status_code=200, headers=headers)
    if answer.style == "ok":
        return JSONResponse(body, status_code=200, headers=headers)
    return JSONResponse(body, status_code=200 if duplicate else 202, headers=headers)


def failure(answer: Answer, problem: Problem) -> Response:
    if problem.status == 422:
        problem.status = answer.invalid_status
        if problem.status == 400:
            problem.title = "Bad Request"
    if answer.style == "success_flag":
        listed = problem.listed
        if listed:
            error = "; ".join(f"{e.path.lstrip('/') or 'body'} {e.message}" for e in listed)
            if problem.omitted:
                error += f"; and {problem.omitted} more errors"
        else:
            error = problem.detail or problem.title
        body: dict[str, Any] = {
            "success": False,
            "error": error,
            "errors": [{"path": e.path, "message": e.message} for e in listed],
        }
        if problem.omitted:
            body["errors_omitted"] = problem.omitted
        return JSONResponse(body, status_code=problem.status, headers=problem.headers)
    return problem_response(problem)
