"""The overview: what arrived in the last day and hour, what was refused, where to point vendors."""

from __future__ import annotations

import math
import time

from starlette.requests import Request
from starlette.responses import Response

from ..clock import rfc3339_epoch
from ..store.base import DeliveryQuery
from ..webhooks import webhook_urls
from .charts import per_minute, stacked
from .session import Session
from .web import UI

STATUSES = ("accepted", "unmapped", "rejected")
BAR_WIDTH = 200


async def overview(ui: UI, request: Request, session: Session) -> Response:
    now = time.time()
    counts = await ui.store.delivery_counts(rfc3339_epoch(now - 86400))
    by_source: dict[str, dict[str, int]] = {s: {} for s in ui.sources}
    for row in counts:
        by_source.setdefault(row["source"], {})[row["status"]] = row["n"]
    totals = {s: sum(c.values()) for s, c in by_source.items()}
    scale = max(totals.values(), default=0)
    rows = [
        {
            "source": s,
            "counts": c,
            "total": totals[s],
            "segments": stacked(c, STATUSES, BAR_WIDTH, scale),
        }
        for s, c in sorted(by_source.items())
    ]
    first_minute = math.floor(now / 60) * 60 - 59 * 60
    chart = per_minute(await ui.store.delivery_minutes(rfc3339_epoch(first_minute)), now)
    rejected = await ui.store.list_deliveries(DeliveryQuery(status="rejected"), None, 5)
    ctx = {
        "title": "Overview",
        "nav": "overview",
        "rows": rows,
        "statuses": STATUSES,
        "bar_width": BAR_WIDTH,
        "chart": chart,
        "rejected": rejected,
        "queue_depth": ui.writer.depth,
        "hooks": [(h, ui.secrets[h.setting]) for h in webhook_urls(ui.mappings, ui.base_url(request))],
    }
    return ui.render(request, "overview.html", ctx, session)
