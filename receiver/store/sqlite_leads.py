"""SQLite's lead repository, used inside the writer's transaction on the writer thread.

The writer is the only one writing, so resolution is serialised by construction (two
deliveries for one new email, even in one batch, see each other and make one lead), and
what it read can be cached across batches.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..events import Identity
from ..ids import new_id
from .resolve import Traits

_enc = msgspec.json.encode
_dec = msgspec.json.decode


class LeadCache:
    """What the writer already read, kept across batches: identity -> lead, lead -> the
    lead it was merged into, lead -> traits. It is dropped whole whenever a transaction
    rolls back, and on erasure."""

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


class SQLiteLeadRepo:
    """``resolve.LeadRepo`` on one sqlite3 connection; never suspends."""

    def __init__(self, conn: sqlite3.Connection, cache: LeadCache) -> None:
        self.conn = conn
        self.cache = cache

    async def identity_lead(self, ident: Identity) -> tuple[bool, str | None]:
        key = (ident.kind, ident.value)
        if key in self.cache.idents:
            return True, self.cache.idents[key]
        row = self.conn.execute("SELECT lead_id FROM identities WHERE kind = ? AND value = ?", key).fetchone()
        if row is None:
            return False, None
        self.cache.idents[key] = row[0]
        return True, row[0]

    async def live_id(self, lead_id: str) -> str:
        live = self.cache.live
        seen = live.get(lead_id)
        if seen is None:
            row = self.conn.execute("SELECT merged_into FROM leads WHERE id = ?", (lead_id,)).fetchone()
            seen = lead_id if row is None or row[0] is None else str(row[0])
            live[lead_id] = seen
        while live.get(seen, seen) != seen:  # merged again since
            seen = live[seen]
        return seen

    async def load(self, lead_id: str) -> Traits:
        hit = self.cache.traits.get(lead_id)
        if hit is not None:
            return hit
        row = self.conn.execute("SELECT traits, trait_times FROM leads WHERE id = ?", (lead_id,)).fetchone()
        loaded: Traits = (_dec(row[0]), _dec(row[1]))
        self.cache.traits[lead_id] = loaded
        return loaded

    async def save(self, lead_id: str, traits: Traits, now: str) -> None:
        self.conn.execute(
            "UPDATE leads SET traits = ?, trait_times = ?, updated_at = ? WHERE id = ?",
            (_enc(traits[0]), _enc(traits[1]), now, lead_id),
        )
        self.cache.traits[lead_id] = traits

    async def touch(self, lead_id: str, now: str) -> None:
        self.conn.execute("UPDATE leads SET updated_at = ? WHERE id = ?", (now, lead_id))

    async def create_lead(self, now: str) -> str:
        lead_id = new_id()
        self.conn.execute(
            "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times)"
            " VALUES (?, NULL, ?, ?, X'7B7D', X'7B7D')",
            (lead_id, now, now),
        )
        self.cache.live[lead_id] = lead_id
        self.cache.traits[lead_id] = ({}, {})
        return lead_id

    async def add_identity(self, ident: Identity, source: str, lead_id: str | None, seen_at: str) -> None:
        self.conn.execute(
            "INSERT INTO identities (kind, value, source, known, lead_id, first_seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ident.kind, ident.value, source, int(ident.known), lead_id, seen_at),
        )
        self.cache.idents[(ident.kind, ident.value)] = lead_id

    async def link_identity(self, ident: Identity, lead_id: str) -> None:
        self.conn.execute(
            "UPDATE identities SET lead_id = ? WHERE kind = ? AND value = ?",
            (lead_id, ident.kind, ident.value),
        )
        self.cache.idents[(ident.kind, ident.value)] = lead_id

    async def merge_into(self, survivor: str, loser: str, now: str) -> None:
        c = self.conn
        c.execute(
            "UPDATE leads SET merged_into = ?, traits = X'7B7D', trait_times = X'7B7D', updated_at = ?"
            " WHERE id = ? OR merged_into = ?",
            (survivor, now, loser, loser),
        )
        c.execute("UPDATE identities SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        c.execute("UPDATE events SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        self.cache.live[loser] = survivor
        self.cache.traits.pop(loser, None)
        for key, lid in self.cache.idents.items():
            if lid == loser:
                self.cache.idents[key] = survivor

    async def adopt_anonymous(self, lead_id: str, source: str, anonymous_id: str) -> list[tuple[Any, str]]:
        rows = self.conn.execute(
            "SELECT data, occurred_at FROM events WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
            (source, anonymous_id),
        ).fetchall()
        if rows:
            self.conn.execute(
                "UPDATE events SET lead_id = ? WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
                (lead_id, source, anonymous_id),
            )
        return [(_dec(data).get("lead"), occurred_at) for data, occurred_at in rows]
