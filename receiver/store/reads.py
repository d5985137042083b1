"""The read side, for every backend: keyset pages and chunked exports, in set-based SQL.

Events are listed newest first by ``received_at`` (ties by id), as CONTRACT section 7
says; leads and deliveries newest first by id (UUIDv7: creation and arrival order). A
cursor is the last id of a page (an event's cursor stands for its ``received_at`` and
id), so rows arriving meanwhile sort before it and can neither be skipped nor repeated.

A page costs a fixed number of queries whatever its size: a page of leads is one query
for the leads, one for all their identities and one aggregate for their event counts,
sources and first/last seen. Exports are the same queries, chunk after chunk. Stored
event documents are answered as stored, never decoded and encoded again (see
``event_json``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ..clock import rfc3339_epoch
from ..ids import id_time_ms
from ..leads import unflatten
from .base import DeliveryQuery, EventQuery, LeadQuery

_dec = msgspec.json.decode
_enc = msgspec.json.encode
_LEAD_ID = b'"lead_id":'
EXPORT_CHUNK = 1000

Keyset = tuple[Any, ...]
"""The sort key of the last row of a page: where the next page starts."""


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


def _select(columns: str, table: str, where: list[str], order: str) -> str:
    # Only fixed clauses are joined here; every value is a bound parameter.
    sql = f"SELECT {columns} FROM {table}"  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {order}"


_DELIVERY_COLUMNS = (
    "id",
    "source",
    "received_at",
    "method",
    "path",
    "content_type",
    "status",
    "idempotency_key",
    "mapping",
    "body_format",
)
_DELIVERY_LIST = ", ".join((*_DELIVERY_COLUMNS, "reasons"))


class SQLReads:
    """Queries in portable SQL with ``?`` placeholders. A backend supplies ``_all`` and
    ``_one``, ``_any`` (a column matching any of a list of values) and may stream the
    chunks of an export its own way (``_chunks``)."""

    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        raise NotImplementedError

    def _any(self, column: str, values: list[str]) -> tuple[str, Any]:
        """A clause true when ``column`` is one of ``values``, and its one parameter."""
        raise NotImplementedError

    async def _chunks(
        self,
        query: Callable[[Keyset | None], tuple[str, list[Any]]],
        keyset: Callable[[Any], Keyset],
        size: int,
    ) -> AsyncIterator[list[Any]]:
        """Every row of ``query(None)``, ``size`` at a time: keyset pages, each its own
        short read, so an export holds no snapshot open and one chunk in memory."""
        after = None
        while True:
            sql, args = query(after)
            rows = await self._all(sql + " LIMIT ?", [*args, size])
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = keyset(rows[-1])

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

    async def _events_sql(self, q: EventQuery) -> Callable[[Keyset | None], tuple[str, list[Any]]]:
        where, args = await self._event_where(q)

        def query(after: Keyset | None) -> tuple[str, list[Any]]:
            more = ["(received_at, id) < (?, ?)"] if after else []
            order = "received_at DESC, id DESC"
            sql = _select("id, received_at, data, lead_id", "events", where + more, order)
            return sql, args + list(after or ())

        return query

    async def events_json(self, q: EventQuery, cursor: str | None, limit: int) -> list[tuple[str, bytes]]:
        """A page of events as ``(id, JSON document)``."""
        sql, args = (await self._events_sql(q))(await self._event_after(cursor))
        rows = await self._all(sql + " LIMIT ?", [*args, limit])
        return [(r["id"], event_json(r["data"], r["lead_id"])) for r in rows]

    async def list_events(self, q: EventQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        return [_dec(doc) for _, doc in await self.events_json(q, before, limit)]

    async def export_events(self, q: EventQuery, size: int = EXPORT_CHUNK) -> AsyncIterator[list[bytes]]:
        """Every matching event as its JSON document, in chunks."""
        query = await self._events_sql(q)
        async for rows in self._chunks(query, lambda r: (r["received_at"], r["id"]), size):
            yield [event_json(r["data"], r["lead_id"]) for r in rows]

    async def iter_events(self, q: EventQuery) -> AsyncIterator[dict[str, Any]]:
        async for docs in self.export_events(q):
            for doc in docs:
                yield _dec(doc)

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT data, lead_id FROM events WHERE id = ?", (event_id,))
        return None if row is None else event_from_row(row["data"], row["lead_id"])

    # -- leads --------------------------------------------------------------------------
    async def _lead_records(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Lead records (CONTRACT section 4) for lead rows: three queries for any number."""
        if not rows:
            return []
        match, arg = self._any("lead_id", [r["id"] for r in rows])
        seen: dict[str, list[Any]] = {}  # lead -> [count, first, last, sources]
        # Only fixed clauses are joined into these two; the ids are one bound parameter.
        for s in await self._all(
            "SELECT lead_id, source, count(*) AS n, min(occurred_at) AS first,"  # noqa: S608
            f" max(occurred_at) AS last FROM events WHERE {match} GROUP BY lead_id, source",
            [arg],
        ):
            agg = seen.get(s["lead_id"])
            if agg is None:
                seen[s["lead_id"]] = [s["n"], s["first"], s["last"], {s["source"]}]
            else:
                agg[0] += s["n"]
                agg[1] = min(agg[1], s["first"])
                agg[2] = max(agg[2], s["last"])
                agg[3].add(s["source"])
        identities: dict[str, list[dict[str, str]]] = {}
        sources: dict[str, set[str]] = {}
        for i in await self._all(
            "SELECT lead_id, source, kind, value FROM identities"  # noqa: S608
            f" WHERE {match} ORDER BY lead_id, first_seen_at, kind",
            [arg],
        ):
            identities.setdefault(i["lead_id"], []).append(
                {"source": i["source"], "kind": i["kind"], "value": i["value"]}
            )
            sources.setdefault(i["lead_id"], set()).add(i["source"])
        out = []
        for row in rows:
            lead_id = row["id"]
            count, first, last, from_events = seen.get(lead_id) or (0, None, None, set())
            out.append(
                {
                    "id": lead_id,
                    "created_at": row["created_at"],
                    "updated_at": row["updated_at"],
                    "first_seen_at": first or row["created_at"],
                    "last_seen_at": last or row["updated_at"],
                    "traits": unflatten(_dec(row["traits"])),
                    "identities": identities.get(lead_id, []),
                    "sources": sorted(from_events | sources.get(lead_id, set())),
                    "event_count": count,
                }
            )
        return out

    async def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        live = await self.live_lead_id(lead_id)
        if live is None:
            return None
        rows = await self._all("SELECT id, created_at, updated_at, traits FROM leads WHERE id = ?", (live,))
        records = await self._lead_records(rows)
        return records[0] if records else None

    def _leads_sql(self, q: LeadQuery) -> Callable[[Keyset | None], tuple[str, list[Any]]]:
        where, args = ["merged_into IS NULL"], []
        if q.email_sha256:
            where.append(
                "id IN (SELECT coalesce(l.merged_into, l.id) FROM identities i JOIN leads l"
                " ON l.id = i.lead_id WHERE i.kind = 'email_sha256' AND i.value = ?)"
            )
            args.append(q.email_sha256)
        if q.source:
            where.append(
                "(EXISTS (SELECT 1 FROM events e WHERE e.lead_id = leads.id AND e.source = ?)"
                " OR EXISTS (SELECT 1 FROM identities i WHERE i.lead_id = leads.id AND i.source = ?))"
            )
            args += [q.source, q.source]
        order = "id DESC"
        if q.updated_since:
            where.append("updated_at >= ?")
            args.append(q.updated_since)
            order = self._order_after_filtering("id") + " DESC"

        def query(after: Keyset | None) -> tuple[str, list[Any]]:
            more = ["id < ?"] if after else []
            sql = _select("id, created_at, updated_at, traits", "leads", where + more, order)
            return sql, args + list(after or ())

        return query

    def _order_after_filtering(self, column: str) -> str:
        """``column`` for an ORDER BY that must not drive the plan: the filter's index is
        read first and its matches sorted (PostgreSQL's planner decides from statistics)."""
        return column

    async def list_leads(self, q: LeadQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        sql, args = self._leads_sql(q)((before,) if before else None)
        return await self._lead_records(await self._all(sql + " LIMIT ?", [*args, limit]))

    async def export_leads(
        self, q: LeadQuery, size: int = EXPORT_CHUNK
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every matching lead record, in chunks."""
        async for rows in self._chunks(self._leads_sql(q), lambda r: (r["id"],), size):
            yield await self._lead_records(rows)

    async def iter_leads(self, q: LeadQuery) -> AsyncIterator[dict[str, Any]]:
        async for records in self.export_leads(q):
            for record in records:
                yield record

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
        if q.status and q.status != "accepted":
            # The rare statuses have an index of their own (with the source): this
            # clause, implied by the one above, is the one that index is defined by.
            where.append("status != 'accepted'")
        return where, args

    async def list_deliveries(self, q: DeliveryQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        where, args = self._delivery_where(q)
        if before:
            where.append("id < ?")
            args.append(before)
        sql = _select(_DELIVERY_LIST, "deliveries", where, "id DESC")
        rows = await self._all(sql + " LIMIT ?", [*args, limit])
        return [self._delivery(r, with_body=False) for r in rows]

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


class SQLiteReads(SQLReads):
    """SQLite's dialect of the read queries."""

    def _any(self, column: str, values: list[str]) -> tuple[str, Any]:
        return f"{column} IN (SELECT value FROM json_each(?))", _enc(values).decode()  # noqa: S608

    def _order_after_filtering(self, column: str) -> str:
        # Without statistics SQLite would walk the whole table in the ORDER BY's index
        # to avoid a sort; a unary + takes that index out of the choice.
        return "+" + column


class PostgresReads(SQLReads):
    """PostgreSQL's dialect of the read queries."""

    def _any(self, column: str, values: list[str]) -> tuple[str, Any]:
        return f"{column} = ANY(?::text[])", values
