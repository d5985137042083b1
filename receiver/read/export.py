"""Streaming exports: NDJSON and CSV, one chunk of rows at a time (constant memory).

The store hands over chunks: events as stored rows (their JSON document and current
lead), leads as records. Each chunk becomes one piece of the response, so what costs
per row is the formatting alone: an event's document is copied into NDJSON as it is,
and split into CSV columns without decoding its nested objects, which are already the
JSON text of their cells.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import msgspec

from ..store.reads import LeadRecord, event_json

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
EventRow = tuple[bytes, str | None]
"""A stored event: its JSON document and the lead it belongs to now."""


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: formula-looking text gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, msgspec.Raw):  # JSON text already
        text = bytes(value).decode()
    elif isinstance(value, dict | list | msgspec.Struct):
        text = msgspec.json.encode(value).decode()
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _text(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _json(raw: msgspec.Raw) -> str:
    text = bytes(raw).decode()
    return "" if text == "null" else _text(text)


def _quoted(cell: str) -> str:
    # What csv.writer does by default (QUOTE_MINIMAL), at a fraction of its cost on
    # long JSON cells.
    if '"' in cell or "," in cell or "\n" in cell or "\r" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


def csv_line(cells: Sequence[str]) -> str:
    return ",".join(map(_quoted, cells)) + "\r\n"


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


def event_cells(row: EventRow) -> tuple[str, ...]:
    """The CSV cells of one stored event, in ``EVENT_COLUMNS`` order."""
    e = _event_cells(row[0])
    return (
        _text(e.id), _text(e.source), _text(e.source_type), _text(e.type), _text(e.occurred_at),
        _text(e.received_at), _text(row[1]), _text(e.anonymous_id), _json(e.lead),
        _json(e.properties), _json(e.context), _json(e.extra), _text(e.delivery_id), _text(e.mapping),
    )  # fmt: skip


def lead_cells(record: LeadRecord) -> list[str]:
    """The CSV cells of one lead record, in ``LEAD_COLUMNS`` order."""
    return [safe_cell(getattr(record, c)) for c in LEAD_COLUMNS]


async def _csv(
    chunks: AsyncIterator[list[Any]], columns: list[str], cells: Callable[[Any], Sequence[str]]
) -> AsyncIterator[bytes]:
    yield csv_line(columns).encode()
    async for chunk in chunks:
        yield "".join([csv_line(cells(item)) for item in chunk]).encode()


async def events_ndjson(chunks: AsyncIterator[list[EventRow]]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield b"".join([event_json(data, lead_id) + b"\n" for data, lead_id in chunk])


def events_csv(chunks: AsyncIterator[list[EventRow]]) -> AsyncIterator[bytes]:
    return _csv(chunks, EVENT_COLUMNS, event_cells)


async def leads_ndjson(chunks: AsyncIterator[list[LeadRecord]]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield _lines(chunk)


def leads_csv(chunks: AsyncIterator[list[LeadRecord]]) -> AsyncIterator[bytes]:
    return _csv(chunks, LEAD_COLUMNS, lead_cells)


#: ``(what, format)`` -> the stream of response pieces for that export.
FORMATS: dict[tuple[str, str], Callable[[AsyncIterator[list[Any]]], AsyncIterator[bytes]]] = {
    ("events", "ndjson"): events_ndjson,
    ("events", "csv"): events_csv,
    ("leads", "ndjson"): leads_ndjson,
    ("leads", "csv"): leads_csv,
}
