"""Charts as numbers for inline SVG: the template draws rectangles, no script involved.

Geometry is computed here (SVG attributes, never inline styles, so the page's
Content-Security-Policy can forbid inline styles too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

WIDTH, HEIGHT, BAR_GAP = 600, 120, 2


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class MinuteChart:
    bars: list[Bar]
    peak: int
    total: int
    start: str
    end: str
    width: int = WIDTH
    height: int = HEIGHT


def minute_key(epoch: float) -> str:
    """``2026-01-31T12:34``: a minute as the stored ``received_at`` begins."""
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(epoch))


def per_minute(counts: dict[str, int], now: float, minutes: int = 60) -> MinuteChart:
    """One bar per minute, oldest at the left, the current minute last."""
    keys = [minute_key(now - 60 * (minutes - 1 - i)) for i in range(minutes)]
    values = [counts.get(k, 0) for k in keys]
    peak = max(values) if values else 0
    slot = WIDTH / minutes
    bars = []
    for i, (k, n) in enumerate(zip(keys, values, strict=True)):
        h = 0.0 if peak == 0 else round(HEIGHT * n / peak, 2)
        bars.append(Bar(round(i * slot, 2), round(HEIGHT - h, 2), round(slot - BAR_GAP, 2), h, k[11:], n))
    return MinuteChart(bars, peak, sum(values), keys[0][11:], keys[-1][11:])


@dataclass(frozen=True)
class Segment:
    status: str
    x: float
    width: float
    count: int


def stacked(counts: dict[str, int], order: tuple[str, ...], width: float, scale: int) -> list[Segment]:
    """Segments of one horizontal bar, ``scale`` being the count that fills ``width``."""
    out, x = [], 0.0
    for status in order:
        n = counts.get(status, 0)
        if n and scale:
            w = round(width * n / scale, 2)
            out.append(Segment(status, round(x, 2), w, n))
            x += w
    return out
