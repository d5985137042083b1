"""PostgreSQL: several receiver processes, one store.

Same semantics as SQLite (group commit, answer after commit, the shared write path in
``sql.py``), with one difference: other processes write too. So each batch transaction
first takes transaction-scoped advisory locks on every dedup key and every identity it
is about to use, in sorted order (no deadlock between batches): two processes posting
the same delivery, or the same new person, at the same moment are serialised on that
key, and the second sees what the first committed — one delivery, one lead. Lead rows
are read ``FOR UPDATE`` so a merge never overwrites traits another process just wrote.

Erasure (``erasure.py``) takes the same locks on the person's identities, and is complete
once committed: what PostgreSQL keeps on disk afterwards is VACUUM's (``CAVEAT``).

``RECEIVER_DATABASE_URL=postgresql://host/db?schema=name`` puts the tables in a schema.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec

from ..clock import now_rfc3339
from ..ids import new_id
from .base import COMMITTING, Erasure, StorageError, WriteRequest, WriteResult
from .erasure import erase, get_erasure, scan, survey
from .migrate import migrations
from .reads import POSTGRES_IDENTITIES_JSON, PostgresReads
from .sql import (
    ADD_LEAD_SOURCE,
    IDENTITIES_ON_ROW,
    INSERT_DELIVERY,
    INSERT_EVENT,
    INSERT_IDENTITY,
    INSERT_KEY,
    INSERT_LEAD,
    INSERT_MESSAGE,
    SAVE_LEAD,
    SAVE_LEAD_IDENTIFIED,
    SUMMARIZE_LEAD,
    TOUCH_LEAD,
    TOUCH_LEAD_IDENTIFIED,
    DedupKeys,
    Executor,
    LeadCache,
    SQLLeadRepo,
    window_start,
    write_batch,
)

T = TypeVar("T")
_dec = msgspec.json.decode
MIGRATION_LOCK = 0x5EC1E7E5  # any constant: one migrator at a time across processes
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
READY_STATEMENT_TIMEOUT_MS = 1000
CAVEAT = (
    "The erased rows are deleted and can no longer be read through PostgreSQL. Its files"
    " may still hold the bytes: dead row versions stay in the table files until VACUUM"
    " reclaims them (VACUUM FULL rewrites the tables), and the write-ahead log, WAL archives"
    " and backups keep them until they are recycled or deleted. See docs/erasure.md."
)


@lru_cache(maxsize=512)
def pg(sql: str) -> str:
    """``?`` placeholders as ``$1``, ``$2``… (our SQL has no ``?`` inside literals)."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class PgExecutor:
    """``sql.Executor`` on one asyncpg connection (or, for reads, on the pool)."""

    summarizes_identities = True
    """A lead's new identities go into its summary in its own update
    (sql.SAVE_LEAD_IDENTIFIED), not in a statement after it."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def one(self, sql: str, args: tuple[Any, ...]) -> Any:
        return await self.conn.fetchrow(pg(sql), *args)

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return list(await self.conn.fetch(pg(sql), *args))

    async def run(self, sql: str, args: tuple[Any, ...]) -> None:
        await self.conn.execute(pg(sql), *args)

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        arrays = ARRAYS.get(sql)
        if arrays is not None and rows:
            await self.conn.execute(arrays, *_arrays(sql, rows))
        else:
            await self.conn.executemany(pg(sql), rows)

    async def together(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """``sql.Together``: the statements (all of them, those without rows too: one text,
        prepared once) in one round trip, an array per column."""
        args: list[Any] = []
        for sql, rows in statements:
            args += _arrays(sql, rows)
        await self.conn.execute(_together(tuple(sql for sql, _ in statements)), *args)

    def lower_text(self, column: str, blob: bool) -> str:
        return f"lower(encode({column}, 'escape'))" if blob else f"lower({column})"

    def contains(self, text: str) -> str:
        return f"strpos({text}, ?) > 0"


def _unnest(sql: str, types: str) -> str:
    """``sql``, an ``INSERT … VALUES (…) …`` of ``?`` values and constants, as one statement
    taking an array of each ``?`` column (of these PostgreSQL ``types``)."""
    parts = re.fullmatch(r"(.*) VALUES \((.*?)\)(.*)", sql, re.S)
    kinds = types.split()
    if parts is None or parts[2].count("?") != len(kinds):
        raise ValueError(f"not an INSERT … VALUES of {types}: {sql}")  # noqa: S608
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(kinds))
    names = [f"c{i + 1}" for i in range(len(kinds))]
    if all(v == "?" for v in parts[2].split(", ")):
        return f"{parts[1]} SELECT * FROM unnest({arrays}){parts[3]}"  # noqa: S608
    it = iter(names)
    values = ", ".join(next(it) if v == "?" else v for v in parts[2].split(", "))
    return f"{parts[1]} SELECT {values} FROM unnest({arrays}) AS r({', '.join(names)}){parts[3]}"  # noqa: S608


# A lead's summary (sql.SUMMARIZE_LEAD) from its lead_sources and identities rows, in
# PostgreSQL's words: JSON written out compact, as msgspec writes it (json_agg adds
# spaces); sources sorted by code point, as SQLite's primary key and Python sort them.
_SOURCES_LIST = (
    """'[' || coalesce(string_agg(to_json(source)::text, ',' ORDER BY source COLLATE "C"), '') || ']'"""
)
_SOURCES_SUMMARY = (
    "min(first_seen_at) AS f, max(last_seen_at) AS z, coalesce(sum(events), 0) AS n,"
    f" {_SOURCES_LIST} AS sources"
)
def _identities_summary(lead: str) -> str:
    """A lead's identities_json from its identities rows, while it has at most
    ``IDENTITIES_ON_ROW``."""
    return (
        "CASE WHEN (SELECT count(*) FROM (SELECT 1 FROM identities"  # noqa: S608
        f" WHERE lead_id = {lead} LIMIT {IDENTITIES_ON_ROW + 1}) x) > {IDENTITIES_ON_ROW} THEN NULL"
        f" ELSE {POSTGRES_IDENTITIES_JSON.format(lead=lead)} END"
    )


def _set_summary(lead: str) -> str:
    """The SET clauses of a lead's summary from ``s`` (``_SOURCES_SUMMARY``), and its
    identities (``_identities_summary``)."""
    return (
        "first_seen_at = s.f, last_seen_at = s.z, event_count = s.n, sources_json = s.sources,"
        f" identities_json = {_identities_summary(lead)}"
    )


# A lead's update that makes its identities again (sql.SAVE_LEAD_IDENTIFIED), when ``r.ident``.
# Its subquery reads ``identities`` as of the statement's start, not as of the lead row's
# lock: right only because every lead a batch updates was locked (FOR UPDATE, in
# ``receiver_prefetch`` or ``PgLeadRepo.load``) or made by this transaction before it,
# so no other writer can add an identity to it meanwhile. A path that updates a lead
# without locking it first must summarize it in a statement of its own.
_IDENTIFIED = (
    f", identities_json = CASE WHEN r.ident THEN {_identities_summary('leads.id')}"
    " ELSE leads.identities_json END"
)


# What a batch adds to a lead's summary (sql._grow), from the row ``r``: least() and
# greatest() pass over NULL.
_GROW = (
    " event_count = leads.event_count + r.n, first_seen_at = least(leads.first_seen_at, r.f),"  # noqa: S608
    " last_seen_at = greatest(leads.last_seen_at, r.z), sources_json = CASE WHEN r.source IS NULL"
    " OR strpos(leads.sources_json, '[' || r.source) > 0 OR strpos(leads.sources_json, ',' || r.source) > 0"
    " THEN leads.sources_json"
    f" ELSE (SELECT {_SOURCES_LIST} FROM lead_sources WHERE lead_id = leads.id) END"
)
# Every lead of the store at once (``receiver copy-to-postgres``, after lead_sources).
SUMMARIZE_ALL = (
    f"UPDATE leads SET {_set_summary('l.id')} FROM leads l"  # noqa: S608
    f" CROSS JOIN LATERAL (SELECT {_SOURCES_SUMMARY} FROM lead_sources WHERE lead_id = l.id) s"
    " WHERE leads.id = l.id AND l.merged_into IS NULL"
)


# The write path's multi-row statements as one statement each, the rows sent as an array
# per column: the server runs one statement instead of one per row (and a batch's inserts
# go together, ``_together``). Each row names a different key (a lead_sources row
# twice would be an error: ``sql.lead_sources`` adds them up first).
ARRAYS = {
    INSERT_LEAD: _unnest(INSERT_LEAD, "text text text bytea bytea"),
    INSERT_IDENTITY: _unnest(INSERT_IDENTITY, "text text text bool text text"),
    INSERT_DELIVERY: _unnest(
        INSERT_DELIVERY, "text text text text text text text text bytea text text text text text text"
    ),
    INSERT_EVENT: _unnest(INSERT_EVENT, "text text text text text text text text text bytea"),
    INSERT_MESSAGE: _unnest(INSERT_MESSAGE, "text text text text text text text bytea"),
    INSERT_KEY: _unnest(INSERT_KEY, "text text text"),
    ADD_LEAD_SOURCE: _unnest(ADD_LEAD_SOURCE, "text text bigint text text"),
    # Leads found by ``id = ANY``, by index, whatever the planner guesses of the arrays'
    # length (joined to the arrays alone, the plan it caches may scan the table).
    SAVE_LEAD: "UPDATE leads SET traits = r.traits, trait_times = r.trait_times,"  # noqa: S608
    f" updated_at = r.updated_at,{_GROW} FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::bigint[],"
    " $5::text[], $6::text[], $7::text[], $8::text[])"
    " AS r(traits, trait_times, updated_at, n, f, z, source, id)"
    " WHERE leads.id = ANY($8::text[]) AND leads.id = r.id",
    SAVE_LEAD_IDENTIFIED: "UPDATE leads SET traits = r.traits, trait_times = r.trait_times,"  # noqa: S608
    f" updated_at = r.updated_at,{_GROW}{_IDENTIFIED} FROM unnest($1::bytea[], $2::bytea[], $3::text[],"
    " $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[])"
    " AS r(traits, trait_times, updated_at, n, f, z, source, id, ident)"
    " WHERE leads.id = ANY($8::text[]) AND leads.id = r.id",
    TOUCH_LEAD_IDENTIFIED: f"UPDATE leads SET updated_at = r.updated_at,{_GROW}{_IDENTIFIED}"  # noqa: S608
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[])"
    " AS r(updated_at, n, f, z, source, id, ident) WHERE leads.id = ANY($6::text[]) AND leads.id = r.id",
    TOUCH_LEAD: f"UPDATE leads SET updated_at = r.updated_at,{_GROW} FROM unnest($1::text[], $2::bigint[],"  # noqa: S608
    " $3::text[], $4::text[], $5::text[], $6::text[]) AS r(updated_at, n, f, z, source, id)"
    " WHERE leads.id = ANY($6::text[]) AND leads.id = r.id",
    # Per lead, one short range of a primary key, aggregated in its order.
    SUMMARIZE_LEAD: f"UPDATE leads SET {_set_summary('r.id')} FROM unnest($1::text[]) AS r(id)"  # noqa: S608
    f" CROSS JOIN LATERAL (SELECT {_SOURCES_SUMMARY} FROM lead_sources WHERE lead_id = r.id) s"
    " WHERE leads.id = ANY($1::text[]) AND leads.id = r.id",
}


# How many arrays each statement of ARRAYS takes.
_COLUMNS = {sql: max(int(n) for n in re.findall(r"\$(\d+)", text)) for sql, text in ARRAYS.items()}


# Each array goes to the server as one text, in PostgreSQL's array syntax, cast there
# (``$1::text::text[]``): asyncpg encodes a Python list element by element, asking of
# each (through ``collections.abc``, some 0.5 µs a time) whether it is itself a
# sequence, 80 times a delivery; a column of plain text is one ``join`` here.
def _element_types(text: str) -> list[str]:
    """The element type of each parameter ``$n::type[]`` of ``text``, in order."""
    found = {int(n): t for n, t in re.findall(r"\$(\d+)::(\w+)\[\]", text)}
    return [found[n] for n in range(1, max(found) + 1)]


def _as_text(text: str) -> str:
    """Every array parameter but bytea's as one text: a literal of bytes is hex, twice
    their length, that the server reads character by character (more of its CPU than
    the checks save); bytea's few columns (bodies, traits) stay lists."""
    return re.sub(r"\$(\d+)::(text|bigint|bool)\[\]", r"$\1::text::\2[]", text)


_TYPES = {sql: _element_types(text) for sql, text in ARRAYS.items()}
ARRAYS = {sql: _as_text(text) for sql, text in ARRAYS.items()}


def _quoted(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"text expected, not {type(value).__name__}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text_array(column: Sequence[Any]) -> str:
    """``column`` (str or None) as a ``text[]`` literal: each quoted, backslash and quote
    escaped; NULL for None."""
    if None not in column:
        try:
            joined = "\x00".join(column)  # a separator PostgreSQL's text never holds (counted)
        except TypeError:
            joined = "\\"  # not all str: element by element (which says which)
        if "\\" not in joined and '"' not in joined and joined.count("\x00") == len(column) - 1:
            return '{"' + joined.replace("\x00", '","') + '"}' if column else "{}"
    return "{" + ",".join("NULL" if v is None else _quoted(v) for v in column) + "}"


def _number(value: Any) -> str:
    if type(value) is not int:
        raise TypeError(f"int expected, not {type(value).__name__}")
    return str(value)


def _bigint_array(column: Sequence[Any]) -> str:
    return "{" + ",".join("NULL" if v is None else _number(v) for v in column) + "}"


_BOOL = {True: "t", False: "f", None: "NULL"}


def _bool(value: Any) -> str:
    if type(value) is not bool and value is not None:
        raise TypeError(f"bool expected, not {type(value).__name__}")
    return _BOOL[value]


def _bool_array(column: Sequence[Any]) -> str:
    return "{" + ",".join(map(_bool, column)) + "}"


_LITERAL: dict[str, Callable[[Sequence[Any]], Any]] = {
    "text": _text_array,
    "bytea": list,  # as asyncpg encodes it (see _as_text)
    "bigint": _bigint_array,
    "bool": _bool_array,
}


def _arrays(sql: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    """The parameters of ``ARRAYS[sql]`` for ``rows``: a literal per column (a list for
    bytea)."""
    types = _TYPES[sql]
    if not rows:
        return [[] if t == "bytea" else "{}" for t in types]
    return [_LITERAL[t](c) for t, c in zip(types, zip(*rows, strict=True), strict=True)]


@lru_cache(maxsize=64)
def _together(statements: tuple[str, ...]) -> str:
    """The ARRAYS statements as one, each a data-modifying CTE: PostgreSQL runs each to
    completion, all on one snapshot (none reads what another writes) and checks foreign
    keys at its end."""
    ctes = []
    offset = 0
    for i, sql in enumerate(statements):
        text = re.sub(r"\$(\d+)", lambda m, o=offset: f"${int(m[1]) + o}", ARRAYS[sql])  # type: ignore[misc]
        ctes.append(f"s{i} AS ({text})")
        offset += _COLUMNS[sql]
    return f"WITH {', '.join(ctes)} SELECT 1"


class PgLeadRepo(SQLLeadRepo):
    # The row stays ours until commit, so a merge never loses another process's write.
    LOAD_SQL = SQLLeadRepo.LOAD_SQL + " FOR UPDATE"


class PgTransactions:
    """``sql.Transactions`` on one connection. Other processes write too, so each
    transaction first takes transaction-scoped advisory locks on the keys it is given."""

    bad_delivery: tuple[type[Exception], ...] = (
        asyncpg.IntegrityConstraintViolationError,
        asyncpg.DataError,
        ValueError,
        TypeError,
    )
    locks = True  # other processes write too

    def __init__(
        self, conn: Any, lock_in_prefetch: bool = False, committing: Callable[[], None] | None = None
    ) -> None:
        self.conn = conn
        self.committing = committing
        """Called when a transaction's work is done and only its commit is left."""
        self.lock_in_prefetch = lock_in_prefetch
        """The locks are taken by ``prefetch`` (its first step, one round trip for both):
        for ``sql.write_batch`` only, which calls it first in each transaction."""
        self._unlocked: list[str] = []

    async def prefetch(self, repo: SQLLeadRepo, batch: list[WriteRequest]) -> None:
        """What the batch will look up, read in one statement instead of several round
        trips per delivery: the stored deliveries its dedup keys name, its identities,
        and their leads (locked, as ``load`` locks them). Runs under the advisory locks
        (taken first, in the same call, with ``lock_in_prefetch``), so none of it can
        change before the transaction ends."""
        conn, cache = self.conn, repo.cache
        sources: list[str] = []
        prints: list[str | None] = []
        ikeys: list[str | None] = []
        since: list[str | None] = []
        for req in batch:
            d = req.delivery
            if req.replace or not req.dedup or d.status == "rejected":
                continue
            if d.idempotency_key is not None:
                sources.append(d.source)
                prints.append(None)
                ikeys.append(d.idempotency_key)
                since.append(None)
            elif d.fingerprint is not None and req.dedup_window_seconds > 0:
                sources.append(d.source)
                prints.append(d.fingerprint)
                ikeys.append(None)
                since.append(window_start(d.received_at, req.dedup_window_seconds))
        wanted = {(i.kind, i.value) for req in batch for idents in req.identities for i in idents}
        kinds, values = (list(c) for c in zip(*wanted, strict=True)) if wanted else ([], [])
        # One round trip: each costs the writer a wait on the server and then on the event
        # loop, and the batch's cycle is a chain of them.
        stored = DedupKeys()
        leads: set[str] = set()
        locks, self._unlocked = self._unlocked, []
        columns: list[Sequence[Any]] = [locks, sources, prints, ikeys, since, kinds, values]
        for r in await conn.fetch(PREFETCH_SQL, *[_text_array(c) for c in columns]):
            t = r["t"]
            if t == 0:  # a stored delivery a dedup key names
                if r["flag"]:
                    stored.idempotency[(r["b"], r["d"])] = r["a"]
                else:
                    stored.fingerprints.setdefault((r["b"], r["c"]), []).append((r["e"], r["a"]))
            elif t == 1:  # an identity
                cache.idents[(r["a"], r["b"])] = r["c"]
            else:  # its lead, locked
                _lead(cache, r["a"], r["b"], r["x"], r["y"], leads)
        for seen in stored.fingerprints.values():
            seen.sort()  # oldest first, as DedupKeys takes them
        repo.stored = stored
        repo.absent = wanted - set(cache.idents)
        # Then the leads those were merged into (one hop, as merge_into keeps it).
        leads -= set(cache.live)
        if leads:
            for r in await conn.fetch(LEADS_SQL, sorted(leads)):
                _lead(cache, r["id"], r["merged_into"], r["traits"], r["trait_times"], set())

    @contextlib.asynccontextmanager
    async def transaction(self, lock_keys: list[str]) -> AsyncIterator[SQLLeadRepo]:
        async with self.conn.transaction():
            if self.lock_in_prefetch:
                self._unlocked = lock_keys
            else:
                # In the keys' order; one row back (count), not one per key.
                await self.conn.execute(LOCK_SQL, lock_keys)
            # Other processes write: nothing read outlives the transaction.
            yield PgLeadRepo(PgExecutor(self.conn), LeadCache())
            if self.committing is not None:
                self.committing()


LOCK_SQL = "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest($1::text[]) AS k"
# The batch's locks (as LOCK_SQL), then what it will look up (migration 0008_prefetch);
# each array as one text (``_text_array``).
PREFETCH_SQL = (
    "SELECT * FROM receiver_prefetch(" + ", ".join(f"${i}::text::text[]" for i in range(1, 8)) + ")"  # noqa: S608 (numbers)
)
# The leads a batch's leads were merged into.
LEADS_SQL = (
    "SELECT id, merged_into, traits, trait_times FROM leads WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)


def _lead(
    cache: LeadCache, lead_id: str, merged_into: str | None, traits: bytes, times: bytes, more: set[str]
) -> None:
    """A lead read (and locked) by ``prefetch``: where it lives now, its traits if it is
    live; the lead it was merged into goes to ``more``."""
    cache.live[lead_id] = merged_into or lead_id
    if merged_into is None:
        cache.traits[lead_id] = (_dec(traits), _dec(times))
    else:
        more.add(merged_into)


class PostgresStore(PostgresReads):
    dialect = "postgres"
    # Batches lock what they use (``PgTransactions``), as two processes' do: the writer
    # prepares and writes the next batch while one commits (``base.COMMITTING``).
    overlaps_commit = True

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        self.schema = next((v for k, v in query if k == "schema"), None)
        if self.schema is not None and not _IDENT.match(self.schema):
            raise StorageError(f"invalid schema name {self.schema!r}")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        self.dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        self._pool: Any = None
        self._writers: list[Any] = []
        """Connections kept by the writer between batches (``write_batch``)."""

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else None
        try:
            if self.schema:
                conn = await asyncpg.connect(self.dsn)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                finally:
                    await conn.close()
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8, server_settings=settings)
            async with self._pool.acquire() as conn:
                await self._migrate(conn)
        except (OSError, asyncpg.PostgresError) as e:
            raise StorageError(f"cannot open PostgreSQL: {e}") from e

    async def _migrate(self, conn: Any) -> None:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations("postgres"):
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES ($1, $2, $3)", version, name, now_rfc3339()
                    )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        if self._pool is not None:
            while self._writers:
                await self._pool.release(self._writers.pop())
            await self._pool.close()
            self._pool = None

    def _p(self) -> Any:
        if self._pool is None:
            raise StorageError("the store is closed")
        return self._pool

    # -- writes -------------------------------------------------------------------------
    async def write_batch(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        # The writer's connections stay out of the pool between batches: a connection
        # given back is reset first (a round trip the batch's answers would wait for).
        # One that failed goes back, to be reset or closed there.
        try:
            pool = self._p()
            conn = self._writers.pop() if self._writers else await pool.acquire()
            try:
                tx = PgTransactions(conn, lock_in_prefetch=True, committing=COMMITTING.get())
                results = await write_batch(tx, batch)
            except BaseException:
                await pool.release(conn)
                raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StorageError(str(e)) from e
        self._writers.append(conn)
        return results

    async def transact(self, work: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` in one transaction (portable SQL through ``sql.Executor``; used by the
        forwarding outbox)."""
        try:
            async with self._p().acquire() as conn, conn.transaction():
                return await work(PgExecutor(conn))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StorageError(str(e)) from e

    async def ping(self) -> None:
        """A real write: one row rewritten (a read-only server, a full disk or a lost
        connection fail it), bounded by a statement timeout."""
        try:
            async with self._p().acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL statement_timeout = {READY_STATEMENT_TIMEOUT_MS}")
                await conn.execute(
                    "INSERT INTO readiness (id, checked_at) VALUES (1, $1)"
                    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    now_rfc3339(),
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StorageError(str(e)) from e

    # -- reads --------------------------------------------------------------------------
    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        return list(await self._p().fetch(pg(sql), *args))

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        return await self._p().fetchrow(pg(sql), *args)

    # -- erasure ------------------------------------------------------------------------
    async def erase_lead(self, lead_id: str) -> Erasure | None:
        """Complete once committed, as far as PostgreSQL can be read; what its files keep
        is VACUUM's and the operator's (``CAVEAT``)."""
        try:
            reader = PgExecutor(self._p())
            found = await survey(reader, lead_id)
            if found is None:
                return None
            scanned = await scan(reader, found.needles)
            # The person's identities stay locked until commit: a delivery of theirs arriving
            # meanwhile waits, then finds nobody and starts a new lead.
            async with (
                self._p().acquire() as conn,
                PgTransactions(conn).transaction(found.lock_keys) as repo,
            ):
                erasure = await erase(repo.x, lead_id, scanned, new_id(), now_rfc3339(), "complete")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StorageError(str(e)) from e
        if erasure is not None:
            erasure.caveat = CAVEAT
        return erasure

    async def get_erasure(self, erasure_id: str) -> Erasure | None:
        erasure = await get_erasure(PgExecutor(self._p()), erasure_id)
        if erasure is not None:
            erasure.caveat = CAVEAT
        return erasure
