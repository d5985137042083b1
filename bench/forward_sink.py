"""The destination of bench/forward.py: answers 204 to every POST after checking its
Standard Webhooks signature; ``GET /count`` says how many arrived and how many failed
the check."""

from __future__ import annotations

import os

from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

webhook = Webhook(os.environ["BENCH_SINK_SECRET"])
counts = {"received": 0, "bad_signature": 0, "distinct": 0}
seen: set[str] = set()


async def hook(request: Request) -> Response:
    body = await request.body()
    try:
        webhook.verify(body, dict(request.headers), json_parse=False)
    except WebhookVerificationError:
        counts["bad_signature"] += 1
    counts["received"] += 1
    seen.add(request.headers.get("webhook-id", ""))
    counts["distinct"] = len(seen)
    return Response(status_code=204)


async def count(request: Request) -> Response:
    return JSONResponse(counts)


app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/count", count)])
