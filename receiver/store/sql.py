"""The write path in portable SQL (``?`` placeholders), shared by every backend.

A backend supplies an ``Executor``: SQLite's runs statements synchronously on the writer
thread (its coroutines never suspend); PostgreSQL's awaits asyncpg. Dedup, the delivery
row, identity resolution and the events are written here, once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from ..clock import now_rfc3339, rfc3339
from ..events import Identity
from ..ids import new_id
from .base import WriteRequest, WriteResult
from .resolve import Traits, resolve

_enc = msgspec.json.encode
_dec = msgspec.json.decode
EMPTY = b"{}"


class Executor(Protocol):
    async def one(self, sql: str, args: tuple[Any, ...]) -> Any: ...

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]: ...

    async def run(self, sql: str, args: tuple[Any, ...]) -> None: ...

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...


def window_start(received_at: str, seconds: int) -> str:
    t = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
    return rfc3339(t - timedelta(seconds=seconds))


async def find_duplicate(x: Executor, req: WriteRequest) -> str | None:
    d = req.delivery
    if d.idempotency_key is not None:
        row = await x.one(
            "SELECT id FROM deliveries WHERE source = ? AND idempotency_key = ?",
            (d.source, d.idempotency_key),
        )
        return None if row is None else str(row[0])
    if d.fingerprint is None or req.dedup_window_seconds <= 0:
        return None
    row = await x.one(
        "SELECT id FROM deliveries WHERE source = ? AND fingerprint = ? AND received_at >= ?"
        " AND status != 'rejected' ORDER BY received_at LIMIT 1",
        (d.source, d.fingerprint, window_start(d.received_at, req.dedup_window_seconds)),
    )
    return None if row is None else str(row[0])


async def write_one(x: Executor, repo: SQLLeadRepo, req: WriteRequest) -> WriteResult:
    d = req.delivery
    if req.dedup and not req.replace and d.status != "rejected":
        first = await find_duplicate(x, req)
        if first is not None:
            return WriteResult(first, duplicate=True)
    if req.replace:
        # The n-th event keeps the id the n-th event had: the same as ids.event_id gives,
        # except for events stored before ids were derived (0.1), whose links survive too.
        kept = await x.all("SELECT id FROM events WHERE delivery_id = ? ORDER BY id", (d.id,))
        for event, row in zip(req.events, kept, strict=False):
            event.id = row[0]
        await x.run("DELETE FROM events WHERE delivery_id = ?", (d.id,))
        await x.run(
            "UPDATE deliveries SET status = ?, reasons = ?, mapping = ? WHERE id = ?",
            (d.status, _enc(d.reasons).decode(), d.mapping, d.id),
        )
    else:
        await x.run(
            "INSERT INTO deliveries (id, source, received_at, method, path, content_type, query,"
            " headers, body, body_format, status, reasons, idempotency_key, fingerprint, mapping)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.id, d.source, d.received_at, d.method, d.path, d.content_type,
                _enc(d.query).decode(), _enc(d.headers).decode(), d.body, d.body_format, d.status,
                _enc(d.reasons).decode(),
                # A rejected delivery does not claim its key: the vendor's fixed retry must pass.
                None if d.status == "rejected" else d.idempotency_key,
                d.fingerprint, d.mapping,
            ),
        )  # fmt: skip
    now = now_rfc3339()
    for event, idents in zip(req.events, req.identities or [[]] * len(req.events), strict=True):
        event.lead_id = await resolve(repo, event, idents, now)
    if req.events:
        await x.many(
            "INSERT INTO events (id, delivery_id, source, type, source_type, occurred_at,"
            " received_at, lead_id, anonymous_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (e.id, e.delivery_id, e.source, e.type, e.source_type, e.occurred_at, e.received_at,
                 e.lead_id, e.anonymous_id, _enc(e))
                for e in req.events
            ],
        )  # fmt: skip
    return WriteResult(d.id)


class LeadCache:
    """What a lone writer already read, kept across batches: identity -> lead, lead -> the
    lead it was merged into, lead -> traits. Only a backend with a single writer may use
    it (SQLite); it is dropped whole whenever a transaction rolls back, and on erasure."""

    LIMIT = 20_000  # entries per map: a few tens of MB at most

    def __init__(self) -> None:
        self.idents: dict[tuple[str, str], str | None] = {}
        self.live: dict[str, str] = {}
        self.traits: dict[str, Traits] = {}

    def clear(self) -> None:
        self.idents.clear()
        self.live.clear()
        self.traits.clear()

    def trim(self) -> None:
        if len(self.idents) > self.LIMIT or len(self.traits) > self.LIMIT or len(self.live) > self.LIMIT:
            self.clear()


class SQLLeadRepo:
    """``resolve.LeadRepo`` in portable SQL, optionally behind a ``LeadCache``."""

    LOAD_SQL = "SELECT traits, trait_times FROM leads WHERE id = ?"

    def __init__(self, x: Executor, cache: LeadCache | None = None) -> None:
        self.x = x
        self.cache = cache if cache is not None else LeadCache()

    async def identity_lead(self, ident: Identity) -> tuple[bool, str | None]:
        key = (ident.kind, ident.value)
        if key in self.cache.idents:
            return True, self.cache.idents[key]
        row = await self.x.one("SELECT lead_id FROM identities WHERE kind = ? AND value = ?", key)
        if row is None:
            return False, None
        self.cache.idents[key] = row[0]
        return True, row[0]

    async def live_id(self, lead_id: str) -> str:
        live = self.cache.live
        seen = live.get(lead_id)
        if seen is None:
            row = await self.x.one("SELECT merged_into FROM leads WHERE id = ?", (lead_id,))
            seen = lead_id if row is None or row[0] is None else str(row[0])
            live[lead_id] = seen
        while live.get(seen, seen) != seen:  # merged again since
            seen = live[seen]
        return seen

    async def load(self, lead_id: str) -> Traits:
        hit = self.cache.traits.get(lead_id)
        if hit is not None:
            return hit
        row = await self.x.one(self.LOAD_SQL, (lead_id,))
        loaded: Traits = (_dec(row[0]), _dec(row[1]))
        self.cache.traits[lead_id] = loaded
        return loaded

    async def save(self, lead_id: str, traits: Traits, now: str) -> None:
        await self.x.run(
            "UPDATE leads SET traits = ?, trait_times = ?, updated_at = ? WHERE id = ?",
            (_enc(traits[0]), _enc(traits[1]), now, lead_id),
        )
        self.cache.traits[lead_id] = traits

    async def touch(self, lead_id: str, now: str) -> None:
        await self.x.run("UPDATE leads SET updated_at = ? WHERE id = ?", (now, lead_id))

    async def create_lead(self, now: str) -> str:
        lead_id = new_id()
        await self.x.run(
            "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times)"
            " VALUES (?, NULL, ?, ?, ?, ?)",
            (lead_id, now, now, EMPTY, EMPTY),
        )
        self.cache.live[lead_id] = lead_id
        self.cache.traits[lead_id] = ({}, {})
        return lead_id

    async def add_identity(self, ident: Identity, source: str, lead_id: str | None, seen_at: str) -> None:
        await self.x.run(
            "INSERT INTO identities (kind, value, source, known, lead_id, first_seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ident.kind, ident.value, source, ident.known, lead_id, seen_at),
        )
        self.cache.idents[(ident.kind, ident.value)] = lead_id

    async def link_identity(self, ident: Identity, lead_id: str) -> None:
        await self.x.run(
            "UPDATE identities SET lead_id = ? WHERE kind = ? AND value = ?",
            (lead_id, ident.kind, ident.value),
        )
        self.cache.idents[(ident.kind, ident.value)] = lead_id

    async def merge_into(self, survivor: str, loser: str, now: str) -> None:
        await self.x.run(
            "UPDATE leads SET merged_into = ?, traits = ?, trait_times = ?, updated_at = ?"
            " WHERE id = ? OR merged_into = ?",
            (survivor, EMPTY, EMPTY, now, loser, loser),
        )
        await self.x.run("UPDATE identities SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        await self.x.run("UPDATE events SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        self.cache.live[loser] = survivor
        self.cache.traits.pop(loser, None)
        for key, lid in self.cache.idents.items():
            if lid == loser:
                self.cache.idents[key] = survivor

    async def adopt_anonymous(self, lead_id: str, source: str, anonymous_id: str) -> list[tuple[Any, str]]:
        rows = await self.x.all(
            "SELECT data, occurred_at FROM events WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
            (source, anonymous_id),
        )
        if rows:
            await self.x.run(
                "UPDATE events SET lead_id = ? WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
                (lead_id, source, anonymous_id),
            )
        return [(_dec(r[0]).get("lead"), r[1]) for r in rows]
