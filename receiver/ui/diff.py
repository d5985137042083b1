"""What a replay changed: each event before and after, compared value by value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..mapping.paths import escape


def flat(value: Any) -> dict[str, str]:
    """Every leaf of a JSON value by its pointer, as JSON text (iterative: any depth)."""
    out: dict[str, str] = {}
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        ptr, v = stack.pop()
        if isinstance(v, dict) and v:
            stack.extend((f"{ptr}/{escape(str(k))}", c) for k, c in v.items())
        elif isinstance(v, list) and v:
            stack.extend((f"{ptr}/{i}", c) for i, c in enumerate(v))
        else:
            out[ptr] = msgspec.json.encode(v).decode("utf-8")
    return out


@dataclass
class Change:
    pointer: str
    before: str | None
    after: str | None


@dataclass
class EventChange:
    index: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changes: list[Change] = field(default_factory=list)


def compare(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    a, b = flat(before or {}), flat(after or {})
    return [Change(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def compare_events(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[EventChange]:
    """Events paired by their position in the delivery (the n-th event is the same event)."""
    out = []
    for i in range(max(len(before), len(after))):
        b = before[i] if i < len(before) else None
        a = after[i] if i < len(after) else None
        out.append(EventChange(i, b, a, compare(b, a)))
    return out
