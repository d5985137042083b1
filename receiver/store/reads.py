"""The read side, for every backend: keyset pages and chunked exports, in set-based SQL.

Events are listed newest first by ``received_at`` (ties by id), as the read API promises
(docs/read-api.md); leads and deliveries newest first by id (UUIDv7: creation and arrival order). A
cursor is the last id of a page (an event's cursor stands for its ``received_at`` and
id), so rows arriving meanwhile sort before it and can neither be skipped nor repeated.

A page is one statement whatever its size. A page of leads reads one row per lead, where
the write path keeps its summary (first and last seen, event count, and its sources and
identities as JSON text; a lead with many identities has the database write them from
their covering index instead); Python nests the traits from their stored text (``leads.unflattened_json``) and
decodes nothing else.
Exports are the same statements, chunk after chunk. Stored event documents are answered
as stored, never decoded and encoded again (see ``event_json``).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, cast

import msgspec

from ..clock import rfc3339_epoch
from ..ids import id_time_ms
from ..leads import unflattened_json
from .base import DeliveryQuery, EventQuery, LeadQuery

_dec = msgspec.json.decode
_enc = msgspec.json.encode
_LEAD_ID = b'"lead_id":'
EXPORT_CHUNK = 1000

Keyset = tuple[Any, ...]
"""The sort key of the last row of a page: where the next page starts."""
Query = Callable[[Keyset | None, int], tuple[str, list[Any]]]
"""(where to start, how many rows) -> SQL and its parameters, for one page."""


class IdentityRecord(msgspec.Struct, gc=False):
    source: str
    kind: str
    value: str


class LeadRecord(msgspec.Struct, gc=False):
    """A lead as the read API answers it (docs/events.md); encodes like the dict."""

    id: str
    created_at: str
    updated_at: str
    first_seen_at: str
    last_seen_at: str
    traits: dict[str, Any]
    identities: list[IdentityRecord]
    sources: list[str]
    event_count: int


class LeadChunks:
    """The leads an export asks for. Iterated: chunks of lead records. The CSV export asks
    for ``csv_rows`` instead: per lead the cells before its traits as one piece the
    database wrote, then its stored traits and its JSON texts, so that Python nests the
    traits, quotes three cells and joins them into the line, and builds no record."""

    def __init__(self, reads: SQLReads, q: LeadQuery, size: int) -> None:
        self._reads, self._q, self._size = reads, q, size
        self._records: AsyncIterator[list[LeadRecord]] | None = None

    def __aiter__(self) -> LeadChunks:
        return self

    async def __anext__(self) -> list[LeadRecord]:
        if self._records is None:
            self._records = self._reads._lead_record_chunks(self._q, self._size)
        return await anext(self._records)

    async def aclose(self) -> None:
        if self._records is not None:
            await self._records.aclose()  # type: ignore[attr-defined]

    def csv_rows(self) -> AsyncIterator[list[Any]]:
        """Chunks of rows ``(id, head, traits, identities, sources, event count)``
        (``SQLReads._lead_csv_columns``)."""
        return self._reads._lead_csv_rows(self._q, self._size)


# ``msgspec.Raw`` under the types of the record's fields (called as it is: no ``cast`` per row).
_raw_traits = cast(Callable[[bytes], dict[str, Any]], msgspec.Raw)
_raw_identities = cast(Callable[[str], list[IdentityRecord]], msgspec.Raw)
_raw_sources = cast(Callable[[str], list[str]], msgspec.Raw)


def _drop(read: asyncio.Future[Any]) -> None:
    """Retrieve what a dropped read ahead ended with, so that nothing reports it."""
    if not read.cancelled():
        read.exception()


def _builtins(record: LeadRecord) -> dict[str, Any]:
    """A lead record as plain values (its JSON parts decoded)."""
    lead: dict[str, Any] = _dec(_enc(record))
    return lead


def event_json(data: bytes, lead_id: str | None) -> bytes:
    """A stored event with its lead as of now (linking and merges change it later).

    Events are stored as msgspec encodes ``Event``: fields in declaration order, the
    scalars before ``lead_id``, no whitespace. When no object or array comes before the
    first ``"lead_id":`` it is the top-level key (that text cannot occur inside a JSON
    string, whose quotes are escaped), and when its stored value is still right, which
    is nearly always, the document goes out as it is. Otherwise it is decoded, patched
    and encoded again, which gives the same bytes a fresh encoding would."""
    data = bytes(data)
    at = data.find(_LEAD_ID)
    if at > 0 and data.find(b"{", 1, at) < 0 and data.find(b"[", 1, at) < 0:
        want = b"null" if lead_id is None else b'"' + lead_id.encode() + b'"'
        end = at + len(_LEAD_ID) + len(want)
        if data.startswith(want, at + len(_LEAD_ID)) and data[end : end + 1] in (b",", b"}"):
            return data
    event: dict[str, Any] = _dec(data)
    event["lead_id"] = lead_id
    return _enc(event)


def event_from_row(data: bytes, lead_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = _dec(data)
    event["lead_id"] = lead_id
    return event


def _equal(**columns: str | None) -> tuple[list[str], list[Any]]:
    """``column = ?`` clauses for the filters that are set."""
    where, args = [], []
    for column, value in columns.items():
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


def _where(columns: str, table: str, where: list[str]) -> str:
    # Only fixed clauses are joined here; every value is a bound parameter.
    sql = f"SELECT {columns} FROM {table}"  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql


def _select(columns: str, table: str, where: list[str], order: str) -> str:
    return _where(columns, table, where) + f" ORDER BY {order}"


NEWEST_EVENTS = "received_at DESC, id DESC"
EVENT_COLUMNS = "id, received_at, data, lead_id"


class DeliveryRecord(msgspec.Struct, gc=False):
    """A delivery as a page of deliveries lists it (docs/read-api.md); encodes like the
    dict ``list_deliveries`` gives. Its reasons stay the JSON text they are stored as, and
    the garbage collector never tracks it: a page of 1,000 dicts and lists made the
    collector run several times per page, and now and then through the whole heap."""

    id: str
    source: str
    received_at: str
    method: str
    path: str
    content_type: str
    status: str
    idempotency_key: str | None
    mapping: str | None
    body_format: str
    reasons: msgspec.Raw


# The columns a page of deliveries reads are the record's fields, in its order.
_DELIVERY_LIST = ", ".join(DeliveryRecord.__struct_fields__)
_DELIVERY_COLUMNS = tuple(f for f in DeliveryRecord.__struct_fields__ if f != "reasons")
"""What ``_delivery`` copies as it is (reasons are decoded)."""


class SQLReads:
    """Queries in portable SQL with ``?`` placeholders. A backend supplies ``_all`` and
    ``_one``."""

    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        raise NotImplementedError

    async def _tuples(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        """``_all``, for rows read by position only (an export's chunks): a backend may
        answer plain tuples, which cost less to make than rows addressed by name."""
        return await self._all(sql, args)

    async def _chunks(
        self, query: Query, keyset: Callable[[Any], Keyset], size: int
    ) -> AsyncIterator[list[Any]]:
        """Every row ``query`` matches, ``size`` at a time: keyset pages, each its own
        short read, so an export holds no snapshot open and at most two chunks in memory.
        The next chunk is asked for before this one is handed over: the database reads
        it while the caller formats this one (PostgreSQL, on another core, in parallel)."""
        sql, args = query(None, size)
        pending: asyncio.Future[list[Any]] | None = asyncio.ensure_future(self._tuples(sql, args))
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if len(rows) == size:
                    sql, args = query(keyset(rows[-1]), size)
                    pending = asyncio.ensure_future(self._tuples(sql, args))
                if rows:
                    yield rows
        finally:
            if pending is not None:  # the export was abandoned: drop the read ahead
                pending.add_done_callback(_drop)
                pending.cancel()

    async def live_lead_id(self, lead_id: str) -> str | None:
        row = await self._one("SELECT id, merged_into FROM leads WHERE id = ?", (lead_id,))
        if row is None:
            return None
        return str(row["merged_into"] or row["id"])

    # -- events -------------------------------------------------------------------------
    async def _event_where(self, q: EventQuery) -> tuple[list[str], list[Any]]:
        where, args = _equal(source=q.source, type=q.type)
        if q.lead_id:
            where.append("lead_id = ?")
            args.append(await self.live_lead_id(q.lead_id) or q.lead_id)
        if q.since:
            where.append("received_at >= ?")
            args.append(q.since)
        if q.until:
            where.append("received_at < ?")
            args.append(q.until)
        return where, args

    async def _event_after(self, cursor: str | None) -> Keyset | None:
        """Where the page after the event ``cursor`` starts. An event erased meanwhile
        stands for the time in its id (UUIDv7, made when it arrived): a row may then
        come twice, none is skipped."""
        if not cursor:
            return None
        row = await self._one("SELECT received_at FROM events WHERE id = ?", (cursor,))
        if row is not None:
            return (row["received_at"], cursor)
        try:
            return (rfc3339_epoch(id_time_ms(cursor) / 1000), cursor)
        except ValueError:
            return ("", cursor)  # not an id at all: nothing is older

    async def _event_arms(self, q: EventQuery) -> list[tuple[str, str]] | None:
        """How a page of events under ``q`` splits into ranges of one index, each read in
        its order and merged by the database: ``(column, value)`` for each range, ``None``
        when the page is one range already. Here it always is (a dialect may say
        otherwise)."""
        return None

    async def _events_sql(self, q: EventQuery) -> Query:
        where, args = await self._event_where(q)
        arms = await self._event_arms(q)

        def query(after: Keyset | None, limit: int) -> tuple[str, list[Any]]:
            more = ["(received_at, id) < (?, ?)"] if after else []
            if arms is None:
                sql = _select(EVENT_COLUMNS, "events", where + more, NEWEST_EVENTS)
                return sql + " LIMIT ?", [*args, *(after or ()), limit]
            if not arms:  # nothing can match
                return f"SELECT {EVENT_COLUMNS} FROM events WHERE 0 LIMIT ?", [limit]  # noqa: S608
            # One SELECT per range, each in the index's order; the database merges them
            # (a compound SELECT's ORDER BY): no sort, and the page stops at its limit.
            parts, params = [], []
            for column, value in arms:
                parts.append(_where(EVENT_COLUMNS, "events", [*where, f"{column} = ?", *more]))
                params += [*args, value, *(after or ())]
            return " UNION ALL ".join(parts) + f" ORDER BY {NEWEST_EVENTS} LIMIT ?", [*params, limit]

        return query

    async def list_events_json(
        self, q: EventQuery, cursor: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """A page of events as ``(id, JSON document)``."""
        sql, args = (await self._events_sql(q))(await self._event_after(cursor), limit)
        return [(r[0], event_json(r[2], r[3])) for r in await self._all(sql, args)]

    async def list_events(self, q: EventQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        return [_dec(doc) for _, doc in await self.list_events_json(q, before, limit)]

    async def export_events(
        self, q: EventQuery, size: int = EXPORT_CHUNK
    ) -> AsyncIterator[list[tuple[bytes, str | None]]]:
        """Every matching event as stored, (JSON document, lead now), in chunks. Where the
        next chunk starts is read from the columns, never from the document."""
        query = await self._events_sql(q)
        async for rows in self._chunks(query, lambda r: (r[1], r[0]), size):
            yield [(r[2], r[3]) for r in rows]

    async def iter_events(self, q: EventQuery) -> AsyncIterator[dict[str, Any]]:
        async for rows in self.export_events(q):
            for data, lead_id in rows:
                yield event_from_row(data, lead_id)

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT data, lead_id FROM events WHERE id = ?", (event_id,))
        return None if row is None else event_from_row(row["data"], row["lead_id"])

    # -- leads --------------------------------------------------------------------------
    # A lead's summary is kept on its row by the write path (sql.SUMMARIZE_LEAD), its
    # identities too unless it has many (NULL): then they are read from their covering
    # index (identities_lead), in the dialect's words (``IDENTITIES``; evaluated only then).
    LEAD_COLUMNS = (
        "id, created_at, updated_at, coalesce(first_seen_at, created_at),"
        " coalesce(last_seen_at, updated_at), event_count, traits,"
        " coalesce(identities_json, {identities}), sources_json"
    )
    IDENTITIES = ""

    def _lead_sql(self, where: str, columns: str | None = None) -> str:
        """One statement for the record rows of the leads ``where`` picks (a clause on the
        table ``leads``), newest first: id, created_at, updated_at, first and last seen
        (created_at and updated_at when it has no events), event count, traits, and the
        JSON text, compact as msgspec writes it, of its identities (in the order first
        seen) and of its sources (those of its events and identities, sorted)."""
        # Only fixed clauses are joined here; every value is a bound parameter.
        columns = columns or self.LEAD_COLUMNS.format(identities=self.IDENTITIES)
        return f"SELECT {columns} FROM leads WHERE {where} ORDER BY id DESC"  # noqa: S608

    @staticmethod
    def _lead_records(rows: list[Any]) -> list[LeadRecord]:
        """The records of ``_lead_sql`` rows. Identities and sources come as JSON text,
        traits are nested by ``unflattened_json``: all go into the record as
        ``msgspec.Raw``, encoded as they are (so records are for encoding; ``_builtins``
        gives their plain form)."""
        return [
            LeadRecord(
                lead_id,
                created_at,
                updated_at,
                first,
                last,
                _raw_traits(unflattened_json(traits)),
                _raw_identities(identities or "[]"),
                _raw_sources(sources or "[]"),
                count,
            )
            for lead_id, created_at, updated_at, first, last, count, traits, identities, sources in rows
        ]

    async def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        live = await self.live_lead_id(lead_id)
        if live is None:
            return None
        records = self._lead_records(await self._all(self._lead_sql("id = ?"), (live,)))
        return _builtins(records[0]) if records else None

    def _leads_sql(self, q: LeadQuery, columns: str | None = None) -> Query:
        where, args = ["merged_into IS NULL"], []
        if q.email_sha256:
            where.append(
                "id IN (SELECT coalesce(l.merged_into, l.id) FROM identities i JOIN leads l"
                " ON l.id = i.lead_id WHERE i.kind = 'email_sha256' AND i.value = ?)"
            )
            args.append(q.email_sha256)
        if q.source:
            # A source of its events or identities: one probe of a primary key per lead.
            where.append("EXISTS (SELECT 1 FROM lead_sources s WHERE s.lead_id = leads.id AND s.source = ?)")
            args.append(q.source)
        if q.updated_since:
            where.append("updated_at >= ?")
            args.append(q.updated_since)

        def query(after: Keyset | None, limit: int) -> tuple[str, list[Any]]:
            more = ["id < ?"] if after else []
            if not args:
                # Every live lead (a plain page, an export): their rows in primary-key
                # order, each read once (a third less time than the two steps below).
                return self._lead_sql(" AND ".join(where + more), columns) + " LIMIT ?", [
                    *(after or ()),
                    limit,
                ]
            # Filtered: the ids first, walking an index of (id, merged_into, updated_at)
            # that answers every filter without reading a lead row, then the rows of
            # that page alone.
            ids = _select("id", "leads", where + more, "id DESC")
            return self._lead_sql(f"id IN ({ids} LIMIT ?)", columns), [*args, *(after or ()), limit]

        return query

    async def list_lead_records(self, q: LeadQuery, before: str | None, limit: int) -> list[LeadRecord]:
        sql, args = self._leads_sql(q)((before,) if before else None, limit)
        return self._lead_records(await self._all(sql, args))

    async def list_leads(self, q: LeadQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        return [_builtins(r) for r in await self.list_lead_records(q, before, limit)]

    def export_leads(self, q: LeadQuery, size: int = EXPORT_CHUNK) -> LeadChunks:
        """Every matching lead record, in chunks (and, for the CSV export, the rows of
        ``LeadChunks.csv_rows``)."""
        return LeadChunks(self, q, size)

    async def _lead_record_chunks(self, q: LeadQuery, size: int) -> AsyncIterator[list[LeadRecord]]:
        async for rows in self._chunks(self._leads_sql(q), lambda r: (r[0],), size):
            yield self._lead_records(rows)

    def _bytes(self, text: str) -> str:
        """SQL for the text ``text`` as bytes (a BLOB)."""
        return f"CAST(({text}) AS BLOB)"

    def _lead_csv_columns(self) -> str:
        """The columns of ``LeadChunks.csv_rows``: the lead's id, its CSV line up to its
        traits (bytes: the cells the receiver wrote, as they are, each followed by a comma),
        its stored traits, the JSON texts of its identities and sources (bytes, as
        ``_lead_records`` takes them), its event count."""
        identities = f"coalesce(nullif(coalesce(identities_json, {self.IDENTITIES}), ''), '[]')"
        sources = "coalesce(nullif(sources_json, ''), '[]')"
        cells = ("id", "created_at", "updated_at", "coalesce(first_seen_at, created_at)",
                 "coalesce(last_seen_at, updated_at)")  # fmt: skip
        head = " || ".join(f"{cell} || ','" for cell in cells)
        return (
            f"id, {self._bytes(head)}, traits, {self._bytes(identities)}, {self._bytes(sources)}, event_count"
        )

    async def _lead_csv_rows(self, q: LeadQuery, size: int) -> AsyncIterator[list[Any]]:
        async for rows in self._chunks(self._leads_sql(q, self._lead_csv_columns()), lambda r: (r[0],), size):
            yield rows

    async def iter_leads(self, q: LeadQuery) -> AsyncIterator[dict[str, Any]]:
        async for records in self.export_leads(q):
            for record in records:
                yield _builtins(record)

    # -- deliveries ---------------------------------------------------------------------
    @staticmethod
    def _delivery(row: Any, with_body: bool) -> dict[str, Any]:
        out: dict[str, Any] = {k: row[k] for k in _DELIVERY_COLUMNS}
        out["reasons"] = _dec(row["reasons"])
        if with_body:
            out["query"] = _dec(row["query"])
            out["headers"] = _dec(row["headers"])
            body = row["body"]
            if body is None:
                out["body"] = None
            else:
                try:
                    out["body"] = bytes(body).decode("utf-8")
                except UnicodeDecodeError:
                    out["body"] = None
                    out["body_base64"] = base64.b64encode(body).decode()
        return out

    @staticmethod
    def _delivery_where(q: DeliveryQuery) -> tuple[list[str], list[Any]]:
        where, args = _equal(status=q.status, source=q.source)
        if q.id_contains:
            like = q.id_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("id LIKE ? ESCAPE '\\'")
            args.append(f"%{like.lower()}%")
        if q.status and q.status != "accepted":
            # The rare statuses have an index of their own (with the source): this
            # clause, implied by the one above, is the one that index is defined by.
            where.append("status != 'accepted'")
        return where, args

    async def _delivery_rows(self, q: DeliveryQuery, before: str | None, limit: int) -> list[Any]:
        where, args = self._delivery_where(q)
        if before:
            where.append("id < ?")
            args.append(before)
        sql = _select(_DELIVERY_LIST, "deliveries", where, "id DESC") + " LIMIT ?"
        return await self._all(sql, [*args, limit])

    async def list_deliveries(self, q: DeliveryQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        return [self._delivery(r, with_body=False) for r in await self._delivery_rows(q, before, limit)]

    async def list_delivery_records(
        self, q: DeliveryQuery, before: str | None, limit: int
    ) -> list[DeliveryRecord]:
        """A page of deliveries as the API answers it."""
        return [
            DeliveryRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], msgspec.Raw(r[10]))
            for r in await self._delivery_rows(q, before, limit)
        ]

    async def get_delivery_record(self, delivery_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
        if row is None:
            return None
        out = self._delivery(row, with_body=True)
        out["events"] = [
            {"id": r["id"], "type": r["type"]}
            for r in await self._all(
                "SELECT id, type FROM events WHERE delivery_id = ? ORDER BY id", (delivery_id,)
            )
        ]
        return out

    async def delivery_ids(self, q: DeliveryQuery) -> list[str]:
        where, args = self._delivery_where(q)
        return [str(r["id"]) for r in await self._all(_select("id", "deliveries", where, "id"), args)]

    async def raw_delivery(self, delivery_id: str) -> Any:
        return await self._one("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))

    # -- summaries for the inspector ------------------------------------------------------
    # Delivery ids are UUIDv7: the id range of a time window is an index range on the
    # primary key, where received_at has no index of its own.
    async def delivery_counts(self, since: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT source, status, count(*) AS n FROM deliveries WHERE id >= ? GROUP BY source, status",
            (id_floor(since),),
        )
        return [{"source": r["source"], "status": r["status"], "n": int(r["n"])} for r in rows]

    async def delivery_minutes(self, since: str) -> dict[str, int]:
        rows = await self._all(
            "SELECT substr(received_at, 1, 16) AS minute, count(*) AS n FROM deliveries"
            " WHERE id >= ? GROUP BY substr(received_at, 1, 16)",
            (id_floor(since),),
        )
        return {str(r["minute"]): int(r["n"]) for r in rows}

    async def merged_lead_ids(self, lead_id: str) -> list[str]:
        rows = await self._all("SELECT id FROM leads WHERE merged_into = ? ORDER BY id", (lead_id,))
        return [str(r["id"]) for r in rows]


# The distinct values of a leading column of events_source_type, one index seek each (a
# skip-scan, which SQLite does not do by itself): the types of a source, and the sources
# that have events of a type.
_TYPES_OF_SOURCE = (
    "WITH RECURSIVE t(v) AS (SELECT (SELECT type FROM events WHERE source = ? ORDER BY type LIMIT 1)"
    " UNION ALL SELECT (SELECT e.type FROM events e WHERE e.source = ? AND e.type > t.v"
    " ORDER BY e.type LIMIT 1) FROM t WHERE t.v IS NOT NULL) SELECT v FROM t WHERE v IS NOT NULL"
)
_SOURCES_OF_TYPE = (
    "WITH RECURSIVE s(v) AS (SELECT (SELECT source FROM events ORDER BY source LIMIT 1)"
    " UNION ALL SELECT (SELECT e.source FROM events e WHERE e.source > s.v ORDER BY e.source LIMIT 1)"
    " FROM s WHERE s.v IS NOT NULL) SELECT v FROM s WHERE v IS NOT NULL"
    " AND EXISTS (SELECT 1 FROM events e WHERE e.source = s.v AND e.type = ?)"
)
MAX_ARMS = 200
"""More ranges than this and a page is read as one statement that sorts (still right)."""


class SQLiteReads(SQLReads):
    """SQLite's dialect of the read queries."""

    async def _event_arms(self, q: EventQuery) -> list[tuple[str, str]] | None:
        """SQLite indexes events by source and type together only (migration 0010: two
        indexes fewer for the writer to keep). A page of one source's events is then one
        range of that index per type of the source, and a page of one type's events one
        per source that has it, merged in order."""
        if q.lead_id or bool(q.source) == bool(q.type):
            return None  # one range: of (source, type), of a lead, of received_at
        if q.source:
            column, rows = "type", await self._all(_TYPES_OF_SOURCE, (q.source, q.source))
        else:
            column, rows = "source", await self._all(_SOURCES_OF_TYPE, (q.type,))
        return [(column, r[0]) for r in rows] if len(rows) <= MAX_ARMS else None

    # Aggregated in the index's order, which SQLite keeps.
    IDENTITIES = (
        "(SELECT json_group_array(json_object('source', source, 'kind', kind, 'value', value))"
        " FROM (SELECT source, kind, value FROM identities WHERE lead_id = leads.id"
        " ORDER BY first_seen_at, kind))"
    )


# A lead's identities as JSON text in the order first seen, in PostgreSQL's words (also
# what its write path keeps on the lead's row): written out compact, as msgspec writes it
# (json_agg adds spaces). ``lead`` names the lead's id.
POSTGRES_IDENTITIES_JSON = (
    """'[' || coalesce((SELECT string_agg('{{"source":' || to_json(source)::text"""
    """ || ',"kind":' || to_json(kind)::text || ',"value":' || to_json(value)::text"""
    """ || '}}', ',' ORDER BY first_seen_at, kind) FROM identities WHERE lead_id = {lead}), '') || ']'"""
)


class PostgresReads(SQLReads):
    """PostgreSQL's dialect of the read queries."""

    IDENTITIES = "(" + POSTGRES_IDENTITIES_JSON.format(lead="leads.id") + ")"

    def _bytes(self, text: str) -> str:
        return f"convert_to(({text}), 'UTF8')"


def id_floor(rfc3339: str) -> str:
    """The smallest UUIDv7 of a moment (``2026-01-31T12:00:00.000Z``)."""
    ms = int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"
