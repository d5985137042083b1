"""The write path in portable SQL (``?`` placeholders), shared by every backend.

A backend supplies ``Transactions``: a way to run work in one transaction, with an
``Executor`` inside it. SQLite's runs statements synchronously on the writer thread (its
coroutines never suspend); PostgreSQL's awaits asyncpg. Batch isolation, dedup, the
delivery row and its identity keys, identity resolution and the events are written here,
once.
"""

from __future__ import annotations

import enum
import functools
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import msgspec

from ..clock import now_rfc3339, rfc3339, rfc3339_epoch
from ..events import Event, Identity
from ..ids import new_id
from ..leads import NO_LEAD_TYPES, merge_lead
from .base import Delivery, WriteRequest, WriteResult
from .keys import delivery_keys
from .resolve import Traits, resolve

_enc = msgspec.json.encode
_dec = msgspec.json.decode
EMPTY = b"{}"


class Reader(Protocol):
    async def one(self, sql: str, args: tuple[Any, ...]) -> Any: ...

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]: ...

    def lower_text(self, column: str, blob: bool) -> str:
        """SQL for the lower-cased text of a column (``blob``: of bytes)."""
        ...

    def contains(self, text: str) -> str:
        """SQL, true when ``text`` contains the argument ``?``."""
        ...


class Executor(Reader, Protocol):
    async def run(self, sql: str, args: tuple[Any, ...]) -> None: ...

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...


@runtime_checkable
class Together(Protocol):
    """An executor that runs several ``many`` statements as one (PostgreSQL: one round
    trip, where a batch's cycle waits on each)."""

    async def together(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None: ...


async def many_together(x: Executor, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
    """``x.many`` of each statement with rows, in this order, or all at once where ``x`` can
    (they must not read what another of them writes)."""
    # Not ``isinstance(x, Together)``: a runtime protocol check walks the classes, their
    # members and annotations (about 11 µs a check, twice a batch, where this is one
    # attribute lookup).
    together = getattr(x, "together", None)
    if together is not None:
        if any(rows for _, rows in statements):
            await together(statements)
        return
    for sql, rows in statements:
        if rows:
            await x.many(sql, rows)


class Transactions(Protocol):
    """How a backend runs work in one transaction."""

    bad_delivery: tuple[type[Exception], ...]
    """What a single bad delivery raises (a constraint, a value the driver refuses)."""

    locks: bool
    """Whether a transaction takes ``lock_keys`` (false where there is one writer)."""

    async def prefetch(self, repo: SQLLeadRepo, batch: list[WriteRequest]) -> None:
        """Read ahead, in the batch's transaction, what its deliveries will look up (or
        nothing, where each lookup is cheap)."""
        ...

    def transaction(self, lock_keys: list[str]) -> AbstractAsyncContextManager[SQLLeadRepo]:
        """One transaction, committed when the block ends and rolled back if it raises;
        ``lock_keys`` (see ``lock_keys``) are held until it ends where other processes write
        too. The repository it yields carries the executor (``repo.x``)."""
        ...


class DeliveryFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def lock_keys(batch: list[WriteRequest]) -> list[str]:
    """Every dedup key and identity a batch is about to use, sorted (so that two batches
    locking them never deadlock)."""
    keys: set[str] = set()
    for req in batch:
        d = req.delivery
        if d.idempotency_key is not None:
            keys.add(f"d:{d.source}:{d.idempotency_key}")
        elif d.fingerprint is not None:
            keys.add(f"f:{d.source}:{d.fingerprint}")
        for idents in req.identities:
            keys.update(identity_lock(i.kind, i.value) for i in idents)
    return sorted(keys)


def identity_lock(kind: str, value: str) -> str:
    return f"i:{kind}:{value}"


async def write_batch(tx: Transactions, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
    """Optimistically, the whole batch in one transaction. If one delivery in it fails (it
    should not: ids are unique and dedup is checked first), the batch is rolled back and
    written again one delivery per transaction, so only that one fails."""
    try:
        return await _in_one_transaction(tx, batch)
    except DeliveryFailed:
        pass
    results: list[WriteResult | Exception] = []
    for req in batch:
        try:
            results += await _in_one_transaction(tx, [req])
        except DeliveryFailed as e:
            results.append(e.error)
    return results


async def _in_one_transaction(tx: Transactions, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
    results: list[WriteResult | Exception] = []
    # A store with one writer (SQLite) takes no locks: the keys are not even listed.
    async with tx.transaction(lock_keys(batch) if tx.locks else []) as repo:
        await tx.prefetch(repo, batch)
        try:
            for req in batch:
                results.append(await write_one(repo.x, repo, req))
            # The rows of the whole batch, one statement per table (a failure here cannot
            # be told apart: the batch is written again one delivery at a time).
            await repo.flush()
        except tx.bad_delivery as e:
            raise DeliveryFailed(e) from e  # one delivery is bad
    return results


INSERT_DELIVERY = (
    "INSERT INTO deliveries (id, source, received_at, method, path, content_type, query,"
    " headers, body, body_format, status, reasons, idempotency_key, fingerprint, mapping)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_EVENT = (
    "INSERT INTO events (id, delivery_id, source, type, source_type, occurred_at,"
    " received_at, lead_id, anonymous_id, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_KEY = "INSERT INTO delivery_keys (kind, value, delivery_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
INSERT_LEAD = (
    "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times)"
    " VALUES (?, NULL, ?, ?, ?, ?)"
)
INSERT_IDENTITY = (
    "INSERT INTO identities (kind, value, source, known, lead_id, first_seen_at) VALUES (?, ?, ?, ?, ?, ?)"
)
# A lead's sources (migration lead_sources), with the count and first and last occurred_at
# of its events from each: what a batch adds is added in SQL, so two writers adding to one
# lead at once both count. A NULL time (a source of identities only) gives way to any
# other (portable: no least()/min() of two values).
# Both add to what is there the same way (constant text joined: no values in it).
_ADD_TO_LEAD_SOURCE = (
    " ON CONFLICT (lead_id, source) DO UPDATE SET"
    " events = lead_sources.events + excluded.events,"
    " first_seen_at = CASE WHEN lead_sources.first_seen_at IS NULL"
    " OR excluded.first_seen_at < lead_sources.first_seen_at"
    " THEN excluded.first_seen_at ELSE lead_sources.first_seen_at END,"
    " last_seen_at = CASE WHEN lead_sources.last_seen_at IS NULL"
    " OR excluded.last_seen_at > lead_sources.last_seen_at"
    " THEN excluded.last_seen_at ELSE lead_sources.last_seen_at END"
)
ADD_LEAD_SOURCE = (
    "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?)" + _ADD_TO_LEAD_SOURCE
)
MOVE_LEAD_SOURCES = (  # a merge: the loser's rows added to the survivor's
    "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"  # noqa: S608
    " SELECT ?, source, events, first_seen_at, last_seen_at FROM lead_sources WHERE lead_id = ?"
    + _ADD_TO_LEAD_SOURCE
)


# A lead's summary, kept on its row (migration lead_summary) so that a page or an export
# of leads reads one row per lead: the first and last seen, event count and sources (as
# JSON text) of its lead_sources rows, and its identities in the order first seen (as
# JSON text) while it has at most ``IDENTITIES_ON_ROW``: a lead may gather any number of
# identities (a customer code per sale) and this row is rewritten on every delivery of
# the lead, so beyond that it holds NULL and they are read from their index.
#
# A batch's events of a lead from one source only move the count and the times, and add
# the source if it is new: the lead's own update does it (``_grow``: SQL adds, so two
# writers adding to one lead both count). Whatever else changes a lead's lead_sources
# or identities (a new identity, two sources in one batch, a link, a merge, an
# adoption, a replay, an erasure) has the lead summarized again from those rows, after
# them (``SUMMARIZE_LEAD``, per batch: ``Pending.summarize``). SQLite's words, with
# numbered parameters; PostgreSQL's executor sends its own text of each (postgres.ARRAYS).
def _grow(n: int) -> str:
    """SET clauses adding a batch's events from one source (parameters ``?n`` to
    ``?n+3``: count, first and last occurred_at, the source as JSON text; NULL times and
    source when the lead had no events in it). A source not in the list yet has the list
    read again; the JSON text of a source is found as itself only after ``[`` or ``,``
    (within a string, a quote is escaped)."""
    count, first, last, source = (f"?{n + i}" for i in range(4))
    return (
        f" event_count = event_count + {count},"  # noqa: S608 (parameter names only)
        f" first_seen_at = CASE WHEN first_seen_at IS NULL OR {first} < first_seen_at"
        f" THEN {first} ELSE first_seen_at END,"
        f" last_seen_at = CASE WHEN last_seen_at IS NULL OR {last} > last_seen_at"
        f" THEN {last} ELSE last_seen_at END,"
        f" sources_json = CASE WHEN {source} IS NULL OR instr(sources_json, '[' || {source}) > 0"
        f" OR instr(sources_json, ',' || {source}) > 0 THEN sources_json"
        " ELSE (SELECT json_group_array(source) FROM lead_sources WHERE lead_id = leads.id) END"
    )


SAVE_LEAD = f"UPDATE leads SET traits = ?1, trait_times = ?2, updated_at = ?3,{_grow(4)} WHERE id = ?8"  # noqa: S608
TOUCH_LEAD = f"UPDATE leads SET updated_at = ?1,{_grow(2)} WHERE id = ?6"  # noqa: S608
NO_GROWTH = (0, None, None, None)
IDENTITIES_ON_ROW = 20
_IDENTITIES_SUMMARY = (  # a lead's identities_json from its identities rows
    "CASE WHEN"  # noqa: S608
    " (SELECT count(*) FROM (SELECT 1 FROM identities"
    f" WHERE lead_id = leads.id LIMIT {IDENTITIES_ON_ROW + 1})) > {IDENTITIES_ON_ROW} THEN NULL"
    " ELSE (SELECT json_group_array(json_object('source', source, 'kind', kind, 'value', value))"
    " FROM (SELECT source, kind, value FROM identities WHERE lead_id = leads.id"
    " ORDER BY first_seen_at, kind)) END"
)
SUMMARIZE_LEAD = (
    "UPDATE leads SET (first_seen_at, last_seen_at, event_count, sources_json) ="  # noqa: S608
    " (SELECT min(first_seen_at), max(last_seen_at), coalesce(sum(events), 0), json_group_array(source)"
    " FROM lead_sources WHERE lead_id = leads.id),"
    f" identities_json = {_IDENTITIES_SUMMARY} WHERE id = ?"
)


# A lead's new identities, on SQLite, join its summary in its own update instead of a
# summary made again (``Pending.appended``): the JSON objects of the batch's identities
# of the lead are appended to its list when they come after every other identity of
# the lead in the order the list keeps (first seen, then kind: the one before the last
# ``k`` sorts before the first of them) and the list stays within IDENTITIES_ON_ROW (its
# objects counted by their first key: within a string a quote is escaped); otherwise
# (more than that, an older identity, a list never made) the list is made again from
# the rows, as SUMMARIZE_LEAD does. The objects are written in Python, as SQLite's
# json_object writes them, only for text it writes as itself (``_plain``).
def _append(n: int) -> str:
    """A SET clause appending identities (parameters ``?n`` to ``?n+3``: the objects as
    JSON text joined by commas, how many, the first seen and kind of the first of them;
    NULL objects when the lead has none new)."""
    objects, k, first, kind = (f"?{n + i}" for i in range(4))
    return (
        f" identities_json = CASE WHEN {objects} IS NULL THEN identities_json"  # noqa: S608
        " WHEN identities_json IS NOT NULL"
        " AND (length(identities_json) - length(replace(identities_json, '{\"source\":', ''))) / 10"
        f" + {k} <= {IDENTITIES_ON_ROW}"
        " AND NOT EXISTS (SELECT 1 FROM (SELECT first_seen_at AS f, kind AS k FROM identities"
        f" WHERE lead_id = leads.id ORDER BY first_seen_at DESC, kind DESC LIMIT 1 OFFSET {k})"
        f" WHERE (f, k) >= ({first}, {kind}))"
        f" THEN CASE WHEN identities_json = '[]' THEN '[' || {objects} || ']'"
        f" ELSE substr(identities_json, 1, length(identities_json) - 1) || ',' || {objects} || ']' END"
        f" ELSE {_IDENTITIES_SUMMARY} END"
    )


SAVE_LEAD_APPENDING = (
    "UPDATE leads SET traits = ?1, trait_times = ?2, updated_at = ?3,"  # noqa: S608
    f"{_grow(4)},{_append(9)} WHERE id = ?8"
)
TOUCH_LEAD_APPENDING = f"UPDATE leads SET updated_at = ?1,{_grow(2)},{_append(7)} WHERE id = ?6"  # noqa: S608
INSERT_LEAD_APPENDING = (  # a new lead's list of identities is empty, not yet to be made
    "INSERT INTO leads (id, merged_into, created_at, updated_at, traits, trait_times, identities_json)"
    " VALUES (?, NULL, ?, ?, ?, ?, '[]')"
)
NO_APPEND = (None, 0, None, None)

# PostgreSQL's way (``Pending.identified``): the update of a lead with new identities makes
# its list again from the rows, as SUMMARIZE_LEAD does, in the same statement (the last
# parameter says whether to); the lead's sources, times and count grow as above. One
# statement and one row version per lead instead of two. SQLite's words, as the spec;
# PostgreSQL's executor sends its own text of each (postgres.ARRAYS).
SAVE_LEAD_IDENTIFIED = (
    "UPDATE leads SET traits = ?1, trait_times = ?2, updated_at = ?3,"  # noqa: S608
    f"{_grow(4)}, identities_json = CASE WHEN ?9 THEN {_IDENTITIES_SUMMARY} ELSE identities_json END"
    " WHERE id = ?8"
)
TOUCH_LEAD_IDENTIFIED = (
    f"UPDATE leads SET updated_at = ?1,{_grow(2)},"  # noqa: S608
    f" identities_json = CASE WHEN ?7 THEN {_IDENTITIES_SUMMARY} ELSE identities_json END WHERE id = ?6"
)
IDENTIFIED = (True,)
NOT_IDENTIFIED = (False,)


def _plain(text: str) -> bool:
    """Whether JSON writes ``text`` as itself between quotes (no escape)."""
    return text.isprintable() and '"' not in text and "\\" not in text


def _appended(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """The ``_append`` parameters of a lead's new identities (``INSERT_IDENTITY`` rows), in
    the order its list keeps them (first seen, kind, then as the index holds them: value,
    source); None when one of them is not plain text."""
    rows.sort(key=lambda r: (r[5], r[0], r[1], r[2]))
    parts = [f'{{"source":"{source}","kind":"{kind}","value":"{value}"}}' for kind, value, source, *_ in rows]
    # Each text as itself: so are all of them together (whose quotes are its own).
    if not _plain("".join(r[0] + r[1] + r[2] for r in rows)):
        return None
    return (",".join(parts), len(rows), rows[0][5], rows[0][0])


def _identified(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """PostgreSQL's parameters of a lead with new identities: make its list again (the
    rows are read there, any text)."""
    return IDENTIFIED


class DedupKeys:
    """Deliveries by dedup key, answering as ``find_duplicate`` does from the table."""

    def __init__(self) -> None:
        self.idempotency: dict[tuple[str, str], str] = {}
        self.fingerprints: dict[tuple[str, str], list[tuple[str, str]]] = {}
        """(source, fingerprint) -> [(received_at, delivery id)], oldest first."""

    def claim(self, d: Delivery) -> None:
        if d.status == "rejected":
            return  # a rejected delivery claims nothing (see find_duplicate)
        if d.idempotency_key is not None:
            self.idempotency.setdefault((d.source, d.idempotency_key), d.id)
        elif d.fingerprint is not None:
            self.fingerprints.setdefault((d.source, d.fingerprint), []).append((d.received_at, d.id))

    def duplicate(self, req: WriteRequest) -> str | None:
        d = req.delivery
        if d.idempotency_key is not None:
            return self.idempotency.get((d.source, d.idempotency_key))
        if d.fingerprint is None or req.dedup_window_seconds <= 0:
            return None
        seen = self.fingerprints.get((d.source, d.fingerprint))
        if not seen:  # the usual case: no need to compute the window
            return None
        since = window_start(d.received_at, req.dedup_window_seconds)
        for received_at, first in seen:
            if received_at >= since:
                return first
        return None


class Pending:
    """The rows a batch writes, held until the end of its transaction and then written one
    statement per table (``Executor.many``; PostgreSQL's sends them all as one): the same
    rows as one statement per delivery, in far fewer calls (and, on PostgreSQL, round
    trips). What a later delivery of the batch must see of an earlier one is answered
    from here (its dedup keys) or from the lead cache (identities, leads, traits); the
    rare steps that read or rewrite written rows (a merge, an anonymous id meeting its
    person, a replay) flush first."""

    def __init__(self) -> None:
        self.leads: list[tuple[Any, ...]] = []
        self.identities: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.keys: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.saved: dict[str, str] = {}
        """Lead -> updated_at, for leads whose traits changed (written from the cache)."""
        self.touched: dict[str, str] = {}
        """Lead -> updated_at, for leads only seen."""
        self.summarize: set[str] = set()
        """Leads to summarize again from their rows at the end (see ``SUMMARIZE_LEAD``)."""
        self.claimed = DedupKeys()
        """The dedup keys of the batch's deliveries."""

    def __bool__(self) -> bool:
        return bool(
            self.leads or self.identities or self.deliveries or self.events or self.keys
            or self.messages or self.saved or self.touched or self.summarize
        )  # fmt: skip

    async def flush(self, x: Executor, cache: LeadCache) -> None:
        added = lead_sources(self.events, self.identities)
        appends = getattr(x, "appends_identities", False)
        identified = getattr(x, "summarizes_identities", False)
        appended = self.appended(_appended) if appends else self.appended(_identified) if identified else {}
        grown = self.growth(added, appended)
        # In the order the foreign keys need: a delivery before its events and keys.
        await many_together(
            x,
            [
                (INSERT_LEAD_APPENDING if appends else INSERT_LEAD, self.leads),
                (INSERT_IDENTITY, self.identities),
                (INSERT_DELIVERY, self.deliveries),
                (INSERT_EVENT, self.events),
                (INSERT_KEY, self.keys),
                (INSERT_MESSAGE, self.messages),
                (ADD_LEAD_SOURCE, added),
            ],
        )
        for rows in (self.leads, self.identities, self.deliveries, self.events, self.keys, self.messages):
            rows.clear()
        saved = []
        touched: list[tuple[Any, ...]]
        if appends or identified:
            # A lead summarized again whole after this statement needs no identities in it.
            for lead_id in self.summarize:
                appended.pop(lead_id, None)
            absent = NO_APPEND if appends else NOT_IDENTIFIED
            for lead_id, at in self.saved.items():
                traits = cache.traits[lead_id]
                saved.append(
                    (_enc(traits[0]), _enc(traits[1]), at, *grown.pop(lead_id, NO_GROWTH), lead_id,
                     *appended.get(lead_id, absent))
                )  # fmt: skip
            touched = [
                (at, *grown.pop(lead_id, NO_GROWTH), lead_id, *appended.get(lead_id, absent))
                for lead_id, at in self.touched.items()
            ]
            statements = (
                [(SAVE_LEAD_APPENDING, saved), (TOUCH_LEAD_APPENDING, touched)]
                if appends
                else [(SAVE_LEAD_IDENTIFIED, saved), (TOUCH_LEAD_IDENTIFIED, touched)]
            )
        else:
            for lead_id, at in self.saved.items():
                traits = cache.traits[lead_id]
                saved.append((_enc(traits[0]), _enc(traits[1]), at, *grown.pop(lead_id, NO_GROWTH), lead_id))
            touched = [(at, *grown.pop(lead_id, NO_GROWTH), lead_id) for lead_id, at in self.touched.items()]
            statements = [(SAVE_LEAD, saved), (TOUCH_LEAD, touched)]
        # After the lead_sources rows they read; never the same lead twice.
        await many_together(x, statements)
        self.saved.clear()
        self.touched.clear()
        self.summarize.update(grown)  # none expected: a lead with events is saved or touched
        if self.summarize:
            await x.many(SUMMARIZE_LEAD, [(lead_id,) for lead_id in sorted(self.summarize)])
            self.summarize.clear()

    def appended(
        self, params: Callable[[list[tuple[Any, ...]]], tuple[Any, ...] | None]
    ) -> dict[str, tuple[Any, ...]]:
        """The parameters (``params`` of its new ``INSERT_IDENTITY`` rows: ``_appended``,
        or PostgreSQL's ``_identified``) of each lead with new identities whose update can
        take them in (saved or touched, not to be summarized again, and ``params`` not
        None); the others go to ``summarize``."""
        new: dict[str, list[tuple[Any, ...]]] = {}
        for row in self.identities:
            if row[4] is not None:
                new.setdefault(row[4], []).append(row)
        out: dict[str, tuple[Any, ...]] = {}
        for lead_id, rows in new.items():
            if lead_id in self.summarize or (lead_id not in self.saved and lead_id not in self.touched):
                self.summarize.add(lead_id)
                continue
            found = params(rows)
            if found is None:
                self.summarize.add(lead_id)
            else:
                out[lead_id] = found
        return out

    def growth(
        self, added: list[tuple[Any, ...]], appended: dict[str, tuple[Any, ...]]
    ) -> dict[str, tuple[Any, ...]]:
        """What ``added`` (``lead_sources`` rows) adds to each lead's summary, for the leads
        it leaves with the same identities (or whose new identities ``appended`` takes)
        and with rows of one source in it (their update adds it: ``_grow``); the others
        go to ``summarize``."""
        self.summarize.update(
            row[4] for row in self.identities if row[4] is not None and row[4] not in appended
        )
        grown: dict[str, tuple[Any, ...]] = {}
        for lead_id, source, n, first, last in added:
            if lead_id in self.summarize:
                continue
            if lead_id in grown:
                self.summarize.add(lead_id)
                del grown[lead_id]
            else:
                grown[lead_id] = (n, first, last, _enc(source).decode())
        return grown


def lead_sources(events: list[tuple[Any, ...]], identities: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What event and identity rows (as ``INSERT_EVENT`` and ``INSERT_IDENTITY`` take
    them) add to ``lead_sources``: per (lead, source), how many events and their first and
    last occurred_at. Rows of no lead add nothing (an anonymous id met later brings them:
    ``link_identity``, ``adopt_anonymous``)."""
    seen: dict[tuple[str, str], list[Any]] = {}
    for row in identities:
        if row[4] is not None:
            seen.setdefault((row[4], row[2]), [0, None, None])
    for row in events:
        lead_id = row[7]
        if lead_id is None:
            continue
        at = row[5]
        s = seen.get((lead_id, row[2]))
        if s is None:
            seen[(lead_id, row[2])] = [1, at, at]
        elif s[0] == 0:
            s[:] = [1, at, at]
        else:
            s[0] += 1
            if at < s[1]:
                s[1] = at
            elif at > s[2]:
                s[2] = at
    return [(lead_id, source, *s) for (lead_id, source), s in seen.items()]


async def recount_leads(x: Executor, lead_ids: list[str]) -> None:
    """``lead_sources`` of these leads, and their summaries, computed again from their
    events and identities: after events were deleted (an erasure), which cannot be
    subtracted from a first or last."""
    for lead_id in lead_ids:
        await x.run("DELETE FROM lead_sources WHERE lead_id = ?", (lead_id,))
        await x.run(
            "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"
            " SELECT lead_id, source, count(*), min(occurred_at), max(occurred_at) FROM events"
            " WHERE lead_id = ? GROUP BY lead_id, source",
            (lead_id,),
        )
        await x.run(
            "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"
            " SELECT DISTINCT lead_id, source, 0, NULL, NULL FROM identities WHERE lead_id = ?"
            " ON CONFLICT DO NOTHING",
            (lead_id,),
        )
    if lead_ids:
        await x.many(SUMMARIZE_LEAD, [(lead_id,) for lead_id in lead_ids])


async def subtract_events(x: Executor, deleted: list[tuple[str, str, str]]) -> None:
    """``lead_sources`` without these deleted events, (lead, source, occurred_at): a replay
    of one delivery of a lead with many, costing no more than the delivery. Counts go down
    (in SQL, which also locks the row against another writer until the end of the
    transaction); only where a deleted event was the first or the last of its lead and
    source are the remaining ones read for the new first and last, and a source left
    with no events and no identities goes."""
    gone: dict[tuple[str, str], list[Any]] = {}
    for lead_id, source, at in deleted:
        g = gone.setdefault((lead_id, source), [0, at, at])
        g[0] += 1
        g[1], g[2] = min(g[1], at), max(g[2], at)
    for (lead_id, source), (n, first, last) in gone.items():
        key = (lead_id, source)
        await x.run("UPDATE lead_sources SET events = events - ? WHERE lead_id = ? AND source = ?", (n, *key))
        row = await x.one(
            "SELECT events, first_seen_at, last_seen_at FROM lead_sources WHERE lead_id = ? AND source = ?",
            key,
        )
        if row is None:
            continue
        if row[0] <= 0:
            if await x.one("SELECT 1 FROM identities WHERE lead_id = ? AND source = ? LIMIT 1", key) is None:
                await x.run("DELETE FROM lead_sources WHERE lead_id = ? AND source = ?", key)
            else:
                await x.run(
                    "UPDATE lead_sources SET events = 0, first_seen_at = NULL, last_seen_at = NULL"
                    " WHERE lead_id = ? AND source = ?",
                    key,
                )
        elif row[1] is None or row[2] is None or first <= row[1] or last >= row[2]:
            await x.run(
                "UPDATE lead_sources SET first_seen_at = (SELECT min(occurred_at) FROM events e"
                " WHERE e.lead_id = lead_sources.lead_id AND e.source = lead_sources.source),"
                " last_seen_at = (SELECT max(occurred_at) FROM events e"
                " WHERE e.lead_id = lead_sources.lead_id AND e.source = lead_sources.source)"
                " WHERE lead_id = ? AND source = ?",
                key,
            )


def window_start(received_at: str, seconds: int) -> str:
    # A time as the service writes it (``…T12:00:00.123Z``) keeps its milliseconds when
    # whole seconds are taken away: only its second is computed, once per second.
    if len(received_at) == 24 and received_at[19] == "." and received_at[23] == "Z":
        return _second_before(received_at[:19], seconds) + received_at[19:]
    t = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
    return rfc3339(t - timedelta(seconds=seconds))


@functools.lru_cache(maxsize=1024)
def _second_before(second: str, seconds: int) -> str:
    t = datetime.fromisoformat(second + "+00:00")
    return rfc3339(t - timedelta(seconds=seconds))[:19]


FINGERPRINT_KEY = 8
"""Hex digits of a fingerprint SQLite's index holds (migration 0011_fingerprint_key)."""


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
    # By the prefix SQLite's index holds (migration 0011_fingerprint_key), the whole
    # fingerprint compared here: in SQL, ``fingerprint = ?`` would be substituted into
    # the prefix term, which then no index answers.
    rows = await x.all(
        "SELECT id, fingerprint FROM deliveries WHERE substr(fingerprint, 1, 8) = ? AND source = ?"
        " AND received_at >= ? AND status != 'rejected' ORDER BY received_at",
        (d.fingerprint[:FINGERPRINT_KEY], d.source, window_start(d.received_at, req.dedup_window_seconds)),
    )
    return next((str(row[0]) for row in rows if row[1] == d.fingerprint), None)


async def write_one(x: Executor, repo: SQLLeadRepo, req: WriteRequest) -> WriteResult:
    d = req.delivery
    pending = repo.pending
    # The stored deliveries the batch's keys name, read for the whole batch (see
    # Transactions.prefetch), take the batch's own keys too: one lookup per delivery.
    claimed = pending.claimed if repo.stored is None else repo.stored
    if req.dedup and not req.replace and d.status != "rejected":
        if repo.stored is None:
            first = await find_duplicate(x, req) or claimed.duplicate(req)
        else:
            first = claimed.duplicate(req)
        if first is not None:
            return WriteResult(first, duplicate=True)
    replaced: set[bytes] = set()
    if req.replace:
        await repo.flush()  # it reads and rewrites this delivery's rows
        # The n-th event keeps the id the n-th event had: the same as ids.event_id gives,
        # except for events stored before ids were derived (0.1), whose links survive too.
        kept = await x.all(
            "SELECT id, data, lead_id, source, occurred_at FROM events WHERE delivery_id = ? ORDER BY id",
            (d.id,),
        )
        for event, row in zip(req.events, kept, strict=False):
            event.id = row[0]
        if req.forward:  # an event that comes out as it was is not forwarded again
            replaced = {bytes(row[1]) for row in kept}
        await x.run("DELETE FROM events WHERE delivery_id = ?", (d.id,))
        # The replaced events leave their leads' summaries; the new ones join at the flush.
        await subtract_events(x, [(row[2], row[3], row[4]) for row in kept if row[2] is not None])
        pending.summarize.update(row[2] for row in kept if row[2] is not None)
        await x.run(
            "UPDATE deliveries SET status = ?, reasons = ?, mapping = ? WHERE id = ?",
            (d.status, _enc(d.reasons).decode(), d.mapping, d.id),
        )
    else:
        claimed.claim(d)
        pending.deliveries.append(
            (
                d.id, d.source, d.received_at, d.method, d.path, d.content_type,
                _enc(d.query).decode() if d.query else "{}", _enc(d.headers).decode(), d.body,
                d.body_format, d.status, _enc(d.reasons).decode() if d.reasons else "[]",
                # A rejected delivery does not claim its key: the vendor's fixed retry must pass.
                None if d.status == "rejected" else d.idempotency_key,
                d.fingerprint, d.mapping,
            )
        )  # fmt: skip
    now = now_rfc3339()
    cached = repo.resolve_cached
    for event, idents in zip(req.events, req.identities or [[]] * len(req.events), strict=True):
        lead_id = cached(event, idents, now)
        event.lead_id = await resolve(repo, event, idents, now) if lead_id is Miss.MISS else lead_id
    if req.events:
        data = [_enc(e) for e in req.events]
        pending.events += [
            (e.id, e.delivery_id, e.source, e.type, e.source_type, e.occurred_at, e.received_at,
             e.lead_id, e.anonymous_id, data[i])
            for i, e in enumerate(req.events)
        ]  # fmt: skip
        if req.forward:
            pending.messages += message_rows(req, data, replaced, now)
    keys = delivery_keys(req)
    if keys:
        # A replay adds what today's mapping finds to the keys the stored body gave.
        pending.keys += [(kind, value, d.id) for kind, value in keys]
    return WriteResult(d.id)


# -- the forwarding outbox (receiver/forward) ------------------------------------------
INSERT_MESSAGE = (
    "INSERT INTO messages (id, destination, event_id, delivery_id, state, created_at,"
    " next_attempt_at, expires_at, attempts, body) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, 0, ?)"
)


def message_rows(
    req: WriteRequest, data: list[bytes], replaced: set[bytes], now: str
) -> list[tuple[Any, ...]]:
    """The messages of ``req.forward``; each body is its event as stored (``data``). On a
    replay an event identical to one it replaces is not sent again."""
    expires: dict[float, str] = {}
    rows = []
    for out in req.forward:
        body = data[out.event]
        if body in replaced:
            continue
        until = expires.get(out.max_age)
        if until is None:
            until = expires[out.max_age] = rfc3339_epoch(time.time() + out.max_age)
        event_id = req.events[out.event].id
        rows.append((new_id(), out.destination, event_id, req.delivery.id, now, now, until, body))
    return rows


async def erase_messages(x: Executor, delivery_ids: list[str]) -> None:
    """Erasure: the undelivered messages of these deliveries' events go, bodies and attempts
    with them. A delivered message keeps no body; its record (when, where) stays."""
    await x.many(
        "DELETE FROM messages WHERE delivery_id = ? AND state <> 'delivered'", [(d,) for d in delivery_ids]
    )


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


class Miss(enum.Enum):
    """What ``SQLLeadRepo.resolve_cached`` answers when the cache cannot."""

    MISS = 0


MISS = Miss.MISS


class SQLLeadRepo:
    """``resolve.LeadRepo`` in portable SQL, optionally behind a ``LeadCache``."""

    LOAD_SQL = "SELECT traits, trait_times FROM leads WHERE id = ?"

    def __init__(self, x: Executor, cache: LeadCache | None = None) -> None:
        self.x = x
        self.cache = cache if cache is not None else LeadCache()
        self.pending = Pending()
        self.absent: set[tuple[str, str]] = set()
        """Identities known not to be stored (prefetched in this transaction)."""
        self.stored: DedupKeys | None = None
        """The stored deliveries the batch's dedup keys name, when prefetched."""

    async def flush(self) -> None:
        """Write what is pending (before a statement that reads or rewrites it)."""
        if self.pending:
            await self.pending.flush(self.x, self.cache)

    def resolve_cached(self, event: Event, identities: list[Identity], now: str) -> str | Miss | None:
        """``resolve.resolve`` for the common case, without a coroutine per step: every
        identity is in the cache or known to be absent, every lead they name is in the
        cache and resolves to one live lead (no merge), none is an anonymous id meeting a
        person (no link), and the lead's traits are cached; or only anonymous ids. The same calls, in the same
        order, as ``resolve`` makes; ``MISS`` (nothing done) when the case is another."""
        if event.type in NO_LEAD_TYPES or not identities:
            return None
        idents = self.cache.idents
        absent = self.absent
        found: dict[Identity, str | None] = {}
        lead_id: str | None = None
        unlinked = False
        live = self.cache.live
        for ident in identities:
            key = (ident.kind, ident.value)
            if key in idents:
                lid = found[ident] = idents[key]
                if lid is None:  # stored, of no lead yet
                    unlinked = True
                    continue
                seen = live.get(lid)
                if seen is None:
                    return MISS
                while live.get(seen, seen) != seen:  # merged again since
                    seen = live[seen]
                if lead_id is None:
                    lead_id = seen
                elif seen != lead_id:
                    return MISS  # two leads: a merge
            elif key not in absent:
                return MISS
        if lead_id is None and not any(i.known for i in identities):
            # Anonymous only, and not linked to anyone yet: remember the id, no lead.
            for ident in identities:
                if ident not in found:
                    self._add_identity(ident, event.source, None, event.received_at)
            return None
        if unlinked:
            return MISS  # an anonymous id meets a person: linked to the lead
        lead = event.lead
        traits = None
        if lead_id is not None and lead:
            traits = self.cache.traits.get(lead_id)
            if traits is None:
                return MISS
        pending = self.pending
        if lead_id is None:
            lead_id = self._create_lead(now)
            traits = self.cache.traits[lead_id] if lead else None
        for ident in identities:
            if ident not in found:
                self._add_identity(ident, event.source, lead_id, event.received_at)
        if traits is not None and lead and merge_lead(traits[0], traits[1], lead, event.occurred_at):
            self.cache.traits[lead_id] = traits
            pending.saved[lead_id] = now
            pending.touched.pop(lead_id, None)
        elif lead_id in pending.saved:
            pending.saved[lead_id] = now
        else:
            pending.touched[lead_id] = now
        return lead_id

    async def identity_lead(self, ident: Identity) -> tuple[bool, str | None]:
        key = (ident.kind, ident.value)
        if key in self.cache.idents:
            return True, self.cache.idents[key]
        if key in self.absent:
            return False, None
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
        # Written at the end of the batch, from the cache: a lead seen by several
        # deliveries is written once, as the last of them left it.
        self.cache.traits[lead_id] = traits
        self.pending.saved[lead_id] = now
        self.pending.touched.pop(lead_id, None)

    async def touch(self, lead_id: str, now: str) -> None:
        if lead_id in self.pending.saved:
            self.pending.saved[lead_id] = now
        else:
            self.pending.touched[lead_id] = now

    async def create_lead(self, now: str) -> str:
        return self._create_lead(now)

    def _create_lead(self, now: str) -> str:
        lead_id = new_id()
        self.pending.leads.append((lead_id, now, now, EMPTY, EMPTY))
        self.cache.live[lead_id] = lead_id
        self.cache.traits[lead_id] = ({}, {})
        return lead_id

    async def add_identity(self, ident: Identity, source: str, lead_id: str | None, seen_at: str) -> None:
        self._add_identity(ident, source, lead_id, seen_at)

    def _add_identity(self, ident: Identity, source: str, lead_id: str | None, seen_at: str) -> None:
        key = (ident.kind, ident.value)
        self.pending.identities.append((ident.kind, ident.value, source, ident.known, lead_id, seen_at))
        self.cache.idents[key] = lead_id
        self.absent.discard(key)

    async def link_identity(self, ident: Identity, lead_id: str) -> None:
        await self.flush()  # the identity may be one of the batch's
        row = await self.x.one(
            "SELECT source FROM identities WHERE kind = ? AND value = ?", (ident.kind, ident.value)
        )
        await self.x.run(
            "UPDATE identities SET lead_id = ? WHERE kind = ? AND value = ?",
            (lead_id, ident.kind, ident.value),
        )
        if row is not None:  # its source is the lead's now
            await self.x.run(ADD_LEAD_SOURCE, (lead_id, row[0], 0, None, None))
        self.pending.summarize.add(lead_id)
        self.cache.idents[(ident.kind, ident.value)] = lead_id

    async def merge_into(self, survivor: str, loser: str, now: str) -> None:
        await self.flush()  # it rewrites leads, identities and events the batch may hold
        await self.x.run(
            "UPDATE leads SET merged_into = ?, traits = ?, trait_times = ?, updated_at = ?"
            " WHERE id = ? OR merged_into = ?",
            (survivor, EMPTY, EMPTY, now, loser, loser),
        )
        await self.x.run("UPDATE identities SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        await self.x.run("UPDATE events SET lead_id = ? WHERE lead_id = ?", (survivor, loser))
        await self.x.run(MOVE_LEAD_SOURCES, (survivor, loser))
        await self.x.run("DELETE FROM lead_sources WHERE lead_id = ?", (loser,))
        self.pending.summarize.add(survivor)
        self.cache.live[loser] = survivor
        self.cache.traits.pop(loser, None)
        for key, lid in self.cache.idents.items():
            if lid == loser:
                self.cache.idents[key] = survivor

    async def adopt_anonymous(self, lead_id: str, source: str, anonymous_id: str) -> list[tuple[Any, str]]:
        await self.flush()  # earlier events of the batch may carry this anonymous id
        rows = await self.x.all(
            "SELECT data, occurred_at FROM events WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
            (source, anonymous_id),
        )
        if rows:
            await self.x.run(
                "UPDATE events SET lead_id = ? WHERE source = ? AND anonymous_id = ? AND lead_id IS NULL",
                (lead_id, source, anonymous_id),
            )
            seen = [r[1] for r in rows]
            await self.x.run(ADD_LEAD_SOURCE, (lead_id, source, len(seen), min(seen), max(seen)))
            self.pending.summarize.add(lead_id)
        return [(_dec(r[0]).get("lead"), r[1]) for r in rows]
