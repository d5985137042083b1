"""The read side, for every backend: keyset paging (``id < cursor``), newest first.

Ids are UUIDv7, monotonic by arrival, so "newest first" is ``ORDER BY id DESC`` and a
cursor is the last id of a page: rows arriving meanwhile sort before it and can
neither be skipped nor repeated.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from ..leads import unflatten
from .base import DeliveryQuery, EventQuery, LeadQuery

_dec = msgspec.json.decode


def event_from_row(data: bytes, lead_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = _dec(data)
    event["lead_id"] = lead_id  # may have changed since (linking, merges)
    return event


async def _keyset(
    fetch: Callable[[str | None], Awaitable[list[dict[str, Any]]]], chunk: int
) -> AsyncIterator[dict[str, Any]]:
    """Every row, page after page by id, holding one page in memory at a time."""
    before = None
    while True:
        page = await fetch(before)
        for row in page:
            yield row
        if len(page) < chunk:
            return
        before = page[-1]["id"]


def _equal(**columns: str | None) -> tuple[list[str], list[Any]]:
    """``column = ?`` clauses for the filters that are set."""
    where, args = [], []
    for column, value in columns.items():
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    return where, args


class SQLReads:
    """Queries in portable SQL with ``?`` placeholders; a backend supplies ``_all``/``_one``."""

    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        raise NotImplementedError

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

    async def events_query(self, q: EventQuery, before: str | None) -> tuple[str, list[Any]]:
        """The events matching ``q``, newest first (and older than ``before``)."""
        where, args = await self._event_where(q)
        if before:
            where.append("id < ?")
            args.append(before)
        sql = "SELECT data, lead_id FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + " ORDER BY id DESC", args

    async def list_events(self, q: EventQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        sql, args = await self.events_query(q, before)
        rows = await self._all(sql + " LIMIT ?", [*args, limit])
        return [event_from_row(r["data"], r["lead_id"]) for r in rows]

    def iter_events(self, q: EventQuery, chunk: int = 1000) -> AsyncIterator[dict[str, Any]]:
        return _keyset(lambda before: self.list_events(q, before, chunk), chunk)

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT data, lead_id FROM events WHERE id = ?", (event_id,))
        return None if row is None else event_from_row(row["data"], row["lead_id"])

    # -- leads --------------------------------------------------------------------------
    async def _lead_record(self, row: Any) -> dict[str, Any]:
        lead_id = row["id"]
        agg = await self._one(
            "SELECT count(*) AS n, min(occurred_at) AS first, max(occurred_at) AS last"
            " FROM events WHERE lead_id = ?",
            (lead_id,),
        )
        sources = await self._all(
            "SELECT DISTINCT source FROM events WHERE lead_id = ?"
            " UNION SELECT DISTINCT source FROM identities WHERE lead_id = ?",
            (lead_id, lead_id),
        )
        idents = await self._all(
            "SELECT source, kind, value FROM identities WHERE lead_id = ? ORDER BY first_seen_at, kind",
            (lead_id,),
        )
        return {
            "id": lead_id,
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "first_seen_at": agg["first"] if agg and agg["first"] else row["created_at"],
            "last_seen_at": agg["last"] if agg and agg["last"] else row["updated_at"],
            "traits": unflatten(_dec(row["traits"])),
            "identities": [{"source": i["source"], "kind": i["kind"], "value": i["value"]} for i in idents],
            "sources": sorted(s["source"] for s in sources),
            "event_count": agg["n"] if agg else 0,
        }

    async def get_lead(self, lead_id: str) -> dict[str, Any] | None:
        live = await self.live_lead_id(lead_id)
        if live is None:
            return None
        row = await self._one("SELECT * FROM leads WHERE id = ?", (live,))
        return None if row is None else await self._lead_record(row)

    async def list_leads(self, q: LeadQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        sql, args = self.leads_query(q, before)
        rows = await self._all(sql + " LIMIT ?", [*args, limit])
        return [await self._lead_record(r) for r in rows]

    def leads_query(self, q: LeadQuery, before: str | None) -> tuple[str, list[Any]]:
        """The live leads matching ``q``, newest first (and older than ``before``)."""
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
        if q.updated_since:
            where.append("updated_at >= ?")
            args.append(q.updated_since)
        if before:
            where.append("id < ?")
            args.append(before)
        # Only fixed clauses are joined here; every value is a bound parameter.
        return "SELECT * FROM leads WHERE " + " AND ".join(where) + " ORDER BY id DESC", args  # noqa: S608

    def iter_leads(self, q: LeadQuery, chunk: int = 500) -> AsyncIterator[dict[str, Any]]:
        return _keyset(lambda before: self.list_leads(q, before, chunk), chunk)

    # -- deliveries ---------------------------------------------------------------------
    @staticmethod
    def _delivery(row: Any, with_body: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: row[k]
            for k in (
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
        }
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
        return where, args

    async def list_deliveries(self, q: DeliveryQuery, before: str | None, limit: int) -> list[dict[str, Any]]:
        where, args = self._delivery_where(q)
        if before:
            where.append("id < ?")
            args.append(before)
        sql = "SELECT * FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._all(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
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
        sql = "SELECT id FROM deliveries" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        return [str(r["id"]) for r in await self._all(sql + " ORDER BY id", args)]

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


def id_floor(rfc3339: str) -> str:
    """The smallest UUIDv7 of a moment (``2026-01-31T12:00:00.000Z``)."""
    ms = int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)
    h = f"{ms:012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"
