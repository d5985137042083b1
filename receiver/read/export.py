"""Streaming exports: NDJSON and CSV, one row at a time (constant memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import msgspec

EVENT_COLUMNS = [
    "id",
    "source",
    "source_type",
    "type",
    "occurred_at",
    "received_at",
    "lead_id",
    "anonymous_id",
    "lead",
    "properties",
    "context",
    "extra",
    "delivery_id",
    "mapping",
]
LEAD_COLUMNS = [
    "id",
    "created_at",
    "updated_at",
    "first_seen_at",
    "last_seen_at",
    "traits",
    "identities",
    "sources",
    "event_count",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: formula-looking text gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = msgspec.json.encode(value).decode()
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def ndjson(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for row in rows:
        yield msgspec.json.encode(row) + b"\n"


async def csv_rows(rows: AsyncIterator[dict[str, Any]], columns: list[str]) -> AsyncIterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    async for row in rows:
        writer.writerow([safe_cell(row.get(c)) for c in columns])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
