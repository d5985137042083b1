"""Erasure of a lead (docs/erasure.md), once for every backend.

In three steps, so that the writer is held only for deletes by key:

1. ``survey`` (a read): the lead, the ids merged into it, and what its person looks like
   in stored bytes (emails and their hashes).
2. ``scan`` (reads, one chunk of rows at a time, beside the writer): deliveries whose
   stored body or query spells one of those, in any case or escaping. This is the safety
   net behind ``delivery_keys`` (see ``keys.py``).
3. ``erase`` (one short write transaction): the leads, their identities, and every
   delivery found by an event of the lead, by an identity key or by the scan, with all
   their events and keys; and a record of the erasure (``erasures``), which names nobody.

What the files still hold afterwards is the backend's to purge: SQLite truncates its WAL
(see ``sqlite.py``), PostgreSQL leaves dead rows to VACUUM (see ``postgres.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .base import Erased, Erasure, ErasureState
from .keys import EMAIL_HASH, needles, prefilter_words, spelled_in
from .sql import Executor, Reader, erase_messages, identity_lock, recount_leads

CHUNK = 500
"""Ids per ``IN (…)`` list and rows per scan step: far below every backend's limit."""
SCAN_CHUNK = 2000
SCAN_TARGETS = 32
"""Targets per pass over the deliveries (a person has one or two; a lead merged from many
people has as many as they had emails)."""

# Tables whose rows belong to a delivery (by ``delivery_id``): they go with it.
DELIVERY_ROWS = ("events", "delivery_keys")


@dataclass(frozen=True)
class Survey:
    lead_ids: list[str]
    needles: list[str]
    """Emails and email hashes of the person, to look for in stored bytes."""
    lock_keys: list[str]
    """The person's identities, as the write path locks them (``sql.lock_keys``)."""


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def _lead_ids(r: Reader, lead_id: str) -> list[str] | None:
    row = await r.one("SELECT id, merged_into FROM leads WHERE id = ?", (lead_id,))
    if row is None:
        return None
    live = str(row[1] or row[0])
    merged = await r.all("SELECT id FROM leads WHERE merged_into = ?", (live,))
    return [live, *(str(m[0]) for m in merged)]


async def _identities(r: Reader, ids: list[str]) -> list[tuple[str, str]]:
    return [
        (str(row[0]), str(row[1]))
        for chunk in _chunks(ids)
        for row in await r.all(
            f"SELECT kind, value FROM identities WHERE lead_id IN ({_marks(len(chunk))})",  # noqa: S608
            tuple(chunk),
        )
    ]


async def survey(r: Reader, lead_id: str) -> Survey | None:
    ids = await _lead_ids(r, lead_id)
    if ids is None:
        return None
    emails = []
    for chunk in _chunks(ids):
        for (traits,) in await r.all(
            f"SELECT traits FROM leads WHERE id IN ({_marks(len(chunk))})",  # noqa: S608
            tuple(chunk),
        ):
            email = msgspec.json.decode(bytes(traits)).get("email")
            if isinstance(email, str):
                emails.append(email)
    idents = await _identities(r, ids)
    hashes = [value for kind, value in idents if kind == EMAIL_HASH]
    return Survey(ids, needles(emails, hashes), sorted(identity_lock(k, v) for k, v in idents))


async def scan(r: Reader, targets: list[str]) -> set[str]:
    """Ids of deliveries whose stored body or query spells one of ``targets``. SQL picks
    candidates by words every usual spelling keeps (the database does that work, beside
    the writer and without holding Python); Python then reads each candidate with its
    escapes undone. One chunk of rows per query, so no snapshot is held for long, and a
    bounded number of targets per pass, so the SQL stays small."""
    found: set[str] = set()
    for group in (targets[i : i + SCAN_TARGETS] for i in range(0, len(targets), SCAN_TARGETS)):
        tests, words = [], []
        for t in group:
            ws = prefilter_words(t) or [t]
            for column in ("b", "q"):
                tests.append("(" + " AND ".join(r.contains(column) for _ in ws) + ")")
                words += ws
        # Each row's text is lowered once (materialized), not once per test.
        sql = (
            "WITH chunk AS MATERIALIZED (SELECT id,"  # noqa: S608
            f" {r.lower_text('body', True)} AS b, {r.lower_text('query', False)} AS q"
            f" FROM deliveries WHERE id > ? ORDER BY id LIMIT {SCAN_CHUNK})"
            f" SELECT id, CASE WHEN {' OR '.join(tests)} THEN 1 ELSE 0 END FROM chunk ORDER BY id"
        )
        after = ""
        while True:
            rows = await r.all(sql, (after, *words))
            for row in rows:
                if not row[1]:
                    continue
                stored = await r.one("SELECT body, query FROM deliveries WHERE id = ?", (row[0],))
                if stored is not None and (spelled_in(stored[0], group) or spelled_in(stored[1], group)):
                    found.add(str(row[0]))
            if len(rows) < SCAN_CHUNK:
                break
            after = rows[-1][0]
    return found


async def _count_and_delete(x: Executor, table: str, column: str, ids: list[str]) -> int:
    n = 0
    for chunk in _chunks(ids):
        where = f"FROM {table} WHERE {column} IN ({_marks(len(chunk))})"
        row = await x.one(f"SELECT count(*) {where}", tuple(chunk))
        n += int(row[0])
        await x.run(f"DELETE {where}", tuple(chunk))
    return n


async def erase(
    x: Executor, lead_id: str, scanned: set[str], erasure_id: str, now: str, state: ErasureState
) -> Erasure | None:
    """Inside one write transaction: delete the lead and everything found, record the
    erasure. None when the lead is unknown (or already erased)."""
    ids = await _lead_ids(x, lead_id)
    if ids is None:
        return None
    deliveries = set(scanned)
    for chunk in _chunks(ids):
        rows = await x.all(
            f"SELECT DISTINCT delivery_id FROM events WHERE lead_id IN ({_marks(len(chunk))})",  # noqa: S608
            tuple(chunk),
        )
        deliveries.update(str(r[0]) for r in rows)
    idents = await _identities(x, ids)
    for kind, value in idents:
        rows = await x.all(
            "SELECT delivery_id FROM delivery_keys WHERE kind = ? AND value = ?", (kind, value)
        )
        deliveries.update(str(r[0]) for r in rows)
    found = sorted(deliveries)
    # Other leads with events in these deliveries lose those events: their summaries
    # (lead_sources) are counted again once the events are gone.
    others: set[str] = set()
    for chunk in _chunks(found):
        rows = await x.all(
            f"SELECT DISTINCT lead_id FROM events WHERE delivery_id IN ({_marks(len(chunk))})",  # noqa: S608
            tuple(chunk),
        )
        others.update(str(r[0]) for r in rows if r[0] is not None)
    others.difference_update(ids)
    await erase_messages(x, found)  # the forwarding outbox: undelivered bodies go too
    events = await _count_and_delete(x, "events", "delivery_id", found)
    for table in DELIVERY_ROWS:
        if table != "events":
            await _count_and_delete(x, table, "delivery_id", found)
    erased = Erased(
        leads=len(ids),
        deliveries=await _count_and_delete(x, "deliveries", "id", found),
        # Every event of the lead came from one of its deliveries; this is belt and braces.
        events=events + await _count_and_delete(x, "events", "lead_id", ids),
        identities=await _count_and_delete(x, "identities", "lead_id", ids),
    )
    await _count_and_delete(x, "lead_sources", "lead_id", ids)
    await recount_leads(x, sorted(others))
    await _count_and_delete(x, "leads", "id", ids)
    completed = now if state == "complete" else None
    await x.run(
        "INSERT INTO erasures (id, state, requested_at, completed_at, leads, identities, events,"
        " deliveries) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (erasure_id, state, now, completed, erased.leads, erased.identities, erased.events,
         erased.deliveries),
    )  # fmt: skip
    return Erasure(erasure_id, state, now, completed, erased)


async def complete_pending(x: Executor, now: str) -> None:
    """Every pending erasure is complete: the backend has just purged its files."""
    await x.run("UPDATE erasures SET state = 'complete', completed_at = ? WHERE state = 'pending'", (now,))


async def pending_count(r: Reader) -> int:
    row = await r.one("SELECT count(*) FROM erasures WHERE state = 'pending'", ())
    return int(row[0])


def erasure_from_row(row: Any) -> Erasure:
    return Erasure(
        row[0],
        row[1],
        row[2],
        row[3],
        Erased(leads=row[4], identities=row[5], events=row[6], deliveries=row[7]),
    )


async def get_erasure(r: Reader, erasure_id: str) -> Erasure | None:
    row = await r.one(
        "SELECT id, state, requested_at, completed_at, leads, identities, events, deliveries"
        " FROM erasures WHERE id = ?",
        (erasure_id,),
    )
    return None if row is None else erasure_from_row(row)
