"""How a route answers: the receiver's own answers (docs/webhooks.md) or a vendor's.

The style is chosen per route in the mapping file; the set of styles is closed.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..mapping.spec import Answer
from ..problems import Problem
from ..responses import JSONResponse, problem_response


def success(answer: Answer, body: dict[str, Any], duplicate: bool, document: Any) -> Response:
    if answer.style == "success_flag":
        out: dict[str, Any] = {"success": True, "message": answer.message or "OK"}
        if isinstance(document, dict):
            for name in answer.echo:
                if document.get(name) not in (None, ""):
                    out[name] = document[name]
        return JSONResponse(out, status_code=200)
    if answer.style == "ok":
        return JSONResponse(body, status_code=200)
    return JSONResponse(body, status_code=200 if duplicate else 202)


def failure(answer: Answer, problem: Problem) -> Response:
    if problem.status == 422:
        problem.status = answer.invalid_status
        if problem.status == 400:
            problem.title = "Bad Request"
    if answer.style == "success_flag":
        if problem.errors:
            error = "; ".join(f"{e.path.lstrip('/') or 'body'} {e.message}" for e in problem.errors)
        else:
            error = problem.detail or problem.title
        body = {
            "success": False,
            "error": error,
            "errors": [{"path": e.path, "message": e.message} for e in problem.errors],
        }
        return JSONResponse(body, status_code=problem.status, headers=problem.headers)
    return problem_response(problem)
