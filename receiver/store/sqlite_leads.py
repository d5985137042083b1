"""Identity resolution on SQLite, run inside the writer's transaction.

The single writer thread is the only one that writes, so resolution is serialised
by construction: two deliveries for one new email (even in the same batch) always
see each other and make one lead.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..events import Event, Identity
from ..ids import new_id
from ..leads import NO_LEAD_TYPES, flatten, merge_leads, merge_traits

_enc = msgspec.json.encode
_dec = msgspec.json.decode


class LeadCache:
    """What the writer already read, kept across batches: identity -> lead, lead -> the
    lead it was merged into, lead -> traits. The writer is the only one writing, so the
    cache stays true; it is dropped whole whenever a transaction or savepoint rolls back,
    and on erasure."""

    LIMIT = 20_000  # entries per map: a few tens of MB at most

    def __init__(self) -> None:
        self.idents: dict[tuple[str, str], str | None] = {}
        self.live: dict[str, str] = {}
        self.traits: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}

    def clear(self) -> None:
        self.idents.clear()
        self.live.clear()
        self.traits.clear()

    def trim(self) -> None:
        if len(self.idents) > self.LIMIT or len(self.traits) > self.LIMIT or len(self.live) > self.LIMIT:
            self.clear()


def live_id(conn: sqlite3.Connection, cache: LeadCache, lead_id: str) -> str:
    seen = cache.live.get(lead_id)
    if seen is None:
        row = conn.execute("SELECT merged_into FROM leads WHERE id = ?", (lead_id,)).fetchone()
        seen = lead_id if row is None or row[0] is None else str(row[0])
        cache.live[lead_id] = seen
    while seen != lead_id and cache.live.get(seen, seen) != seen:  # merged again since
        lead_id, seen = seen, cache.live[seen]
    return seen


def _load(conn: sqlite3.Connection, cache: LeadCache, lead_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    hit = cache.traits.get(lead_id)
    if hit is not None:
        return hit
    row = conn.execute("SELECT traits, trait_times FROM leads WHERE id = ?", (lead_id,)).fetchone()
    loaded: tuple[dict[str, Any], dict[str, str]] = (_dec(row[0]), _dec(row[1]))
    cache.traits[lead_id] = loaded
    return loaded


def _save(
    conn: sqlite3.Connection,
    cache: LeadCache,
    lead_id: str,
    traits: dict[str, Any],
    times: dict[str, str],
    now: str,
) -> None:
    conn.execute(
        "UPDATE leads SET traits = ?, trait_times = ?, updated_at = ? WHERE id = ?",
        (_enc(traits), _enc(times), now, lead_id),
    )
    cache.traits[lead_id] = (traits, times)


def _merge(conn: sqlite3.Connection, cache: LeadCache, survivor: str, losers: list[str], now: str) -> None:
    traits, times = _load(conn, cache, survivor)
    for loser in losers:
        lt, ltimes = _load(conn, cache, loser)
        merge_leads(traits, times, lt, ltimes)
        conn.execute(
            "UPDATE leads SET merged_into = ?, traits = X'7B7D', trait_times = X'7B7D', updated_at = ?"
            " WHERE id = ? OR merged_into = ?",
            (survivor, now, loser, loser),
        )
        conn.execute("UPDATE identities SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        conn.execute("UPDATE events SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        cache.live[loser] = survivor
        cache.traits.pop(loser, None)
        for key, lid in cache.idents.items():
            if lid == loser:
                cache.idents[key] = survivor
    _save(conn, cache, survivor, traits, times, now)


def resolve(
    conn: sqlite3.Connection, cache: LeadCache, event: Event, identities: list[Identity], now: str
) -> str | None:
    """The lead of an event (creating, linking or merging leads as needed), or None."""
    if event.type in NO_LEAD_TYPES or not identities:
        return None
    found: dict[tuple[str, str], str | None] = {}
    for ident in identities:
        key = (ident.kind, ident.value)
        if key in cache.idents:
            found[key] = cache.idents[key]
            continue
        row = conn.execute(
            "SELECT lead_id FROM identities WHERE kind = ? AND value = ?", (ident.kind, ident.value)
        ).fetchone()
        if row is not None:
            found[key] = cache.idents[key] = row[0]
    leads = sorted({live_id(conn, cache, lid) for lid in found.values() if lid is not None})
    known = [i for i in identities if i.known]
    if not known and not leads:
        # Anonymous only, and not linked to anyone yet: remember the id, no lead.
        for ident in identities:
            conn.execute(
                "INSERT OR IGNORE INTO identities (kind, value, source, known, lead_id, first_seen_at)"
                " VALUES (?, ?, ?, 0, NULL, ?)",
                (ident.kind, ident.value, event.source, event.received_at),
            )
            cache.idents[(ident.kind, ident.value)] = None
        return None
    if not leads:
        lead_id = new_id()
        conn.execute(
            "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times)"
            " VALUES (?, NULL, ?, ?, X'7B7D', X'7B7D')",
            (lead_id, now, now),
        )
        cache.live[lead_id] = lead_id
        cache.traits[lead_id] = ({}, {})
    else:
        # UUIDv7 ids sort by creation: the smallest is the oldest lead, which survives.
        lead_id = leads[0]
        if len(leads) > 1:
            _merge(conn, cache, lead_id, leads[1:], now)
    for ident in identities:
        key = (ident.kind, ident.value)
        if key not in found:
            conn.execute(
                "INSERT INTO identities (kind, value, source, known, lead_id, first_seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ident.kind, ident.value, event.source, int(ident.known), lead_id, event.received_at),
            )
            cache.idents[key] = lead_id
        elif found[key] is None:
            # An anonymous id meets a person: it and its earlier events join the lead.
            conn.execute(
                "UPDATE identities SET lead_id = ? WHERE kind = ? AND value = ?",
                (lead_id, ident.kind, ident.value),
            )
            cache.idents[key] = lead_id
            _adopt_anonymous_events(conn, cache, lead_id, event.source, ident.value, now)
    if event.lead:
        traits, times = _load(conn, cache, lead_id)
        if merge_traits(traits, times, flatten(event.lead), event.occurred_at):
            _save(conn, cache, lead_id, traits, times, now)
            return lead_id
    conn.execute("UPDATE leads SET updated_at = ? WHERE id = ?", (now, lead_id))
    return lead_id


def _adopt_anonymous_events(
    conn: sqlite3.Connection, cache: LeadCache, lead_id: str, source: str, anonymous_id: str, now: str
) -> None:
    rows = conn.execute(
        "SELECT data, occurred_at FROM events WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
        (source, anonymous_id),
    ).fetchall()
    if not rows:
        return
    conn.execute(
        "UPDATE events SET lead_id = ? WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
        (lead_id, source, anonymous_id),
    )
    traits, times = _load(conn, cache, lead_id)
    changed = False
    for data, occurred_at in rows:
        lead = _dec(data).get("lead")
        if lead:
            changed |= merge_traits(traits, times, flatten(lead), occurred_at)
    if changed:
        _save(conn, cache, lead_id, traits, times, now)
