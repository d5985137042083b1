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

from ..leads import unflattened_json
from ..store.reads import LeadChunks, LeadRecord, event_json

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


# Cells are written as bytes, each line through one ``%`` template: what csv.writer does
# by default (QUOTE_MINIMAL, CRLF) at a fraction of its cost on long JSON cells.
def _cell(text: str | None) -> bytes:
    """A text cell: formula-looking text gets a leading quote; quoted when it must be."""
    if not text:
        return b""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        text = '"' + text.replace('"', '""') + '"'
    return text.encode()


def _json_cell(raw: bytes | msgspec.Raw) -> bytes:
    """A cell of JSON text: an object or array (no formula starts with ``{`` or ``[``, and
    JSON text holds no raw line break), or ``null``, which is an empty cell."""
    data = bytes(raw)
    if data == b"null":
        return b""
    # ``find``, not ``in``: ``b'"' in data`` first tries the needle as an integer, and
    # raises and clears a TypeError (a formatted message) each time, three times a lead.
    if data.find(b'"') >= 0 or data.find(b",") >= 0:
        return b'"' + data.replace(b'"', b'""') + b'"'
    return data


def _own(text: str | None) -> bytes:
    """A cell the receiver wrote itself (a UUID, an RFC 3339 time): nothing to escape."""
    return text.encode() if text else b""


def csv_line(cells: Sequence[str]) -> bytes:
    return b",".join(map(_cell, cells)) + b"\r\n"


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
_NULL = msgspec.Raw(b"null")
# An event's line: 8 text cells, the lead (quoted, or an empty cell when null), the 3
# objects (never null; quoted together with the lead), then 2 text cells.
_EVENT_LINE = b'%b,"%b",%b\r\n'
_EVENT_LINE_NO_LEAD = b'%b,,"%b",%b\r\n'
_LEAD_LINE = b",".join([b"%b"] * len(LEAD_COLUMNS)) + b"\r\n"


def _cells(texts: tuple[str, ...]) -> tuple[bytes, bytes, bytes]:
    """An event's 10 text cells as its first 8 (joined) and its last 2. Joined as they
    are when none needs quoting or escaping (a few scans of the row, in C; nearly
    always), else cell by cell."""
    row = "\x1f" + "\x1f".join(texts)
    if (
        '"' in row or "," in row or "\n" in row or "\r" in row or "\x1f=" in row
        or "\x1f+" in row or "\x1f-" in row or "\x1f@" in row or "\x1f\t" in row
        or row.count("\x1f") != len(texts)
    ):  # fmt: skip
        cells = list(map(_cell, texts))
        return b",".join(cells[:8]), cells[8], cells[9]
    head, delivery_id, mapping = ",".join(texts).encode().rsplit(b",", 2)
    return head, delivery_id, mapping


def event_line(row: EventRow) -> bytes:
    """The CSV line of one stored event, in ``EVENT_COLUMNS`` order. The lead and the
    three objects are quoted together, in one pass over their text, joined straight from
    the decoded document (``Raw`` is a buffer: no copies)."""
    e = _event_cells(row[0])
    head, delivery_id, mapping = _cells((
        e.id, e.source, e.source_type or "", e.type, e.occurred_at, e.received_at,
        row[1] or "", e.anonymous_id or "", e.delivery_id, e.mapping,
    ))  # fmt: skip
    return _line(e, head, b"%b,%b" % (delivery_id, mapping))


def _line(e: _EventCells, head: bytes, tail: bytes) -> bytes:
    if e.lead == _NULL:
        objects = b"\x1f".join((e.properties, e.context, e.extra))
        line = _EVENT_LINE_NO_LEAD
    else:
        objects = b"\x1f".join((e.lead, e.properties, e.context, e.extra))
        line = _EVENT_LINE
    return line % (head, objects.replace(b'"', b'""').replace(b"\x1f", b'","'), tail)


def _plain(cells: str, n: int, per_row: int) -> bool:
    """Whether ``n`` rows of text cells (``per_row`` each, joined by commas, the rows by a
    line break and a comma, so that a comma comes before every cell but the first) go
    into CSV as they are: no cell holds a quote, a comma or a line break, none starts
    like a formula. Each test is one scan of the chunk's text, in C; for ``-`` and ``@``
    (in every id and time, in every mapping) only where a cell starts."""
    return not (
        '"' in cells or "\r" in cells or "=" in cells or "+" in cells or "\t" in cells
        or cells.count(",") != per_row * n - 1 or cells.count("\n") != n - 1
        or cells.startswith(("-", "@")) or ",-" in cells or ("@" in cells and ",@" in cells)
    )  # fmt: skip


def event_lines(rows: Sequence[EventRow]) -> bytes:
    """The CSV lines of a chunk of stored events, as ``event_line`` writes each. A chunk
    whose text cells all go in as they are (nearly every one) is checked once, and its
    cells are joined and encoded in a few calls for the whole chunk; any other chunk
    goes line by line."""
    events = [_event_cells(data) for data, _ in rows]
    heads = "\n,".join([
        ",".join((e.id, e.source, e.source_type or "", e.type, e.occurred_at, e.received_at,
                  lead_id or "", e.anonymous_id or ""))
        for e, (_, lead_id) in zip(events, rows, strict=True)
    ])  # fmt: skip
    tails = "\n,".join([e.delivery_id + "," + e.mapping for e in events])
    n = len(events)
    if not (_plain(heads, n, 8) and _plain(tails, n, 2)):
        return b"".join(map(event_line, rows))
    return b"".join(map(_line, events, heads.encode().split(b"\n,"), tails.encode().split(b"\n,")))


def _json_value(value: Any) -> bytes:
    return _json_cell(value if isinstance(value, msgspec.Raw) else msgspec.json.encode(value))


def lead_line(r: LeadRecord) -> bytes:
    """The CSV line of one lead record, in ``LEAD_COLUMNS`` order (its traits and identities
    are JSON text when the store built it)."""
    return _LEAD_LINE % (
        _own(r.id), _own(r.created_at), _own(r.updated_at), _own(r.first_seen_at),
        _own(r.last_seen_at), _json_value(r.traits), _json_value(r.identities),
        _json_value(r.sources), b"%d" % r.event_count,
    )  # fmt: skip


async def _csv(
    chunks: AsyncIterator[list[Any]], columns: list[str], line: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    yield csv_line(columns)
    async for chunk in chunks:
        yield b"".join([line(item) for item in chunk])


async def events_ndjson(chunks: AsyncIterator[list[EventRow]]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        # Joined by line breaks, one after the last (the empty piece): each document is
        # copied once, into the chunk, not first into a line of its own.
        lines = [event_json(data, lead_id) for data, lead_id in chunk]
        lines.append(b"")
        yield b"\n".join(lines)


async def events_csv(chunks: AsyncIterator[list[EventRow]]) -> AsyncIterator[bytes]:
    yield csv_line(EVENT_COLUMNS)
    async for chunk in chunks:
        yield event_lines(chunk)


async def leads_ndjson(chunks: AsyncIterator[list[LeadRecord]]) -> AsyncIterator[bytes]:
    # Records, encoded by msgspec a chunk at a time: cheaper than whole lines written by
    # the database (measured: its concatenations cost more than the records).
    async for chunk in chunks:
        yield _lines(chunk)


async def leads_csv(chunks: AsyncIterator[list[LeadRecord]]) -> AsyncIterator[bytes]:
    if not isinstance(chunks, LeadChunks):
        async for piece in _csv(chunks, LEAD_COLUMNS, lead_line):
            yield piece
        return
    yield csv_line(LEAD_COLUMNS)
    async for rows in chunks.csv_rows():
        # The cells before the traits are the receiver's own (``_own``: as they are),
        # written by the database; the JSON cells as ``_json_cell`` writes them.
        yield b"".join([
            b"%b%b,%b,%b,%d\r\n" % (head, _json_cell(unflattened_json(traits)), _json_cell(identities),
                                     _json_cell(sources), count)
            for _, head, traits, identities, sources, count in rows
        ])  # fmt: skip


#: ``(what, format)`` -> the stream of response pieces for that export.
FORMATS: dict[tuple[str, str], Callable[[AsyncIterator[list[Any]]], AsyncIterator[bytes]]] = {
    ("events", "ndjson"): events_ndjson,
    ("events", "csv"): events_csv,
    ("leads", "ndjson"): leads_ndjson,
    ("leads", "csv"): leads_csv,
}
