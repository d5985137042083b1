"""Streaming exports: NDJSON and CSV, a chunk of rows at a time (constant memory).

The store hands over chunks: events as their stored JSON documents, leads as records.
Each chunk becomes one piece of the response, so the cost per row is the formatting
alone: an event's document is copied into NDJSON as it is, and split into CSV columns
without decoding its nested objects (they are already the JSON text of their cell).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
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
_lines = msgspec.json.Encoder().encode_lines


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


class _EventCells(msgspec.Struct):
    """An event document split into its CSV columns; objects stay JSON text."""

    id: str
    source: str
    source_type: str | None
    type: str
    occurred_at: str
    received_at: str
    lead_id: str | None
    anonymous_id: str | None
    lead: msgspec.Raw
    properties: msgspec.Raw
    context: msgspec.Raw
    extra: msgspec.Raw
    delivery_id: str
    mapping: str


_event_cells = msgspec.json.Decoder(_EventCells).decode


def _text(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _json(raw: msgspec.Raw) -> str:
    text = bytes(raw).decode()
    return "" if text == "null" else _text(text)


def event_row(document: bytes) -> tuple[str, ...]:
    """The CSV cells of one event document, in ``EVENT_COLUMNS`` order."""
    e = _event_cells(document)
    return (
        _text(e.id), _text(e.source), _text(e.source_type), _text(e.type), _text(e.occurred_at),
        _text(e.received_at), _text(e.lead_id), _text(e.anonymous_id), _json(e.lead),
        _json(e.properties), _json(e.context), _json(e.extra), _text(e.delivery_id), _text(e.mapping),
    )  # fmt: skip


def lead_row(record: dict[str, Any]) -> list[str]:
    return [safe_cell(record.get(c)) for c in LEAD_COLUMNS]


async def ndjson(chunks: AsyncIterator[list[Any]]) -> AsyncIterator[bytes]:
    """One JSON document a line; documents already encoded (bytes) are copied."""
    async for chunk in chunks:
        if chunk:
            yield _lines([msgspec.Raw(r) if isinstance(r, bytes) else r for r in chunk])


async def csv_rows(
    chunks: AsyncIterator[list[Any]], columns: list[str], row: Callable[[Any], Sequence[str]]
) -> AsyncIterator[bytes]:
    """A header line, then ``row(item)`` for every item, one piece per chunk."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    async for chunk in chunks:
        writer.writerows([row(item) for item in chunk])
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()
