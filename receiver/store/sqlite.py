"""The embedded default store: one SQLite file in WAL mode, ``synchronous=FULL``.

All writes go through one connection on one dedicated thread (SQLite has one writer
anyway); the group-commit writer hands it whole batches. Reads use aiosqlite
connections of their own, which WAL lets run beside the writer.

The WAL is copied into the database file by a checkpointer of its own (a connection and
a thread), not by the writer: SQLite's automatic checkpoints run on the committing
connection, so after a long reader let go the writer would copy the whole backlog while
deliveries wait.

Erasure (``erasure.py``) deletes in a short transaction, then purges the WAL: old page
images of the erased rows stay in it until it is checkpointed and truncated, which SQLite
can do only when no reader holds an older snapshot (a backup tool, a ``sqlite3`` shell).
The writer never waits for such a reader: it tries, and if a reader is in the way the
erasure is recorded as pending and retried in the background until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from ..clock import now_rfc3339
from ..ids import new_id
from .base import Erasure, StorageError, WriteRequest, WriteResult
from .erasure import complete_pending, erase, get_erasure, pending_count, scan, survey
from .migrate import migrations
from .reads import SQLiteReads
from .resolve import run_sync
from .sql import FINGERPRINT_KEY, DedupKeys, Executor, LeadCache, SQLLeadRepo, window_start, write_batch

T = TypeVar("T")
log = logging.getLogger("receiver.store")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
    "PRAGMA wal_autocheckpoint=0",  # the Checkpointer's job
    # The writer keeps SQLite's default page cache (2 MiB): a 64 MiB one took 30% of its
    # pread calls away but added 70 MB to the service's memory (bench/rss.py: 135 MB
    # against 66), for a gain in CPU too small to tell from noise.
)
# The sqlite3 module binds int, float, str and bytearray as they are, but sends every
# other value (None, bytes: several a delivery) through its adapter registry first; when
# the registry has nothing for the type, the lookup that follows raises and catches an
# AttributeError with a formatted message, a cost per parameter larger than SQLite's own
# work to bind it. Identity adapters for those two types end the search at the registry
# (both values are bound exactly as before: NULL and a blob). Process-wide, and harmless
# to any other connection.
sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b itself
sqlite3.register_adapter(type(None), cast(Callable[[None], None], {}.get))  # None for any argument
# A bool (an identity's ``known``) is not exactly an int either: with nothing registered
# its search fails through two attribute lookups and an exception, and it is then bound
# as the integer it is. Bound as that integer, at once.
sqlite3.register_adapter(bool, int)
PURGE_RETRY_MAX_SECONDS = 0.25
READER_CACHE_KIB = 64 * 1024
CAVEATS = {
    "pending": (
        "The erased rows can no longer be read, but older copies of their pages are still in"
        " the write-ahead log (the -wal file) because another connection to the database file"
        " (a backup tool, a sqlite3 shell) holds an older snapshot. The service truncates the"
        " log as soon as that reader finishes; this erasure then becomes complete."
    ),
    "complete": (
        "No byte of the erased rows remains in the database files (the write-ahead log was"
        " truncated and freed pages zeroed). Copies made before the erasure (backups,"
        " replicas such as Litestream) still hold them until they are deleted."
    ),
}


class SQLiteExecutor:
    """``sql.Executor`` on a sqlite3 connection: synchronous, never suspends."""

    appends_identities = True
    """A lead's new identities join its summary in its own update (sql.SAVE_LEAD_APPENDING)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, args: tuple[Any, ...]) -> Any:
        return self.conn.execute(sql, args).fetchone()

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    async def run(self, sql: str, args: tuple[Any, ...]) -> None:
        self.conn.execute(sql, args)

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    def lower_text(self, column: str, blob: bool) -> str:
        return lower_text(column, blob)

    def contains(self, text: str) -> str:
        return contains(text)


def lower_text(column: str, blob: bool) -> str:
    return f"lower(CAST({column} AS TEXT))"


def contains(text: str) -> str:
    return f"instr({text}, ?) > 0"


class AioReader:
    """``sql.Reader`` on the aiosqlite read connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def one(self, sql: str, args: tuple[Any, ...]) -> Any:
        async with self.conn.execute(sql, args) as cur:
            return await cur.fetchone()

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        async with self.conn.execute(sql, args) as cur:
            return list(await cur.fetchall())

    def lower_text(self, column: str, blob: bool) -> str:
        return lower_text(column, blob)

    def contains(self, text: str) -> str:
        return contains(text)


class SQLiteTransactions:
    """``sql.Transactions`` on the writer connection (nobody else writes: no locks)."""

    bad_delivery: tuple[type[Exception], ...] = (
        sqlite3.IntegrityError,
        sqlite3.InterfaceError,
        ValueError,
        TypeError,
    )

    locks = False
    """No ``lock_keys``: this connection is the only writer."""

    def __init__(self, conn: sqlite3.Connection, cache: LeadCache) -> None:
        self.conn = conn
        self.cache = cache

    async def prefetch(self, repo: SQLLeadRepo, batch: list[WriteRequest]) -> None:
        """What the batch will look up, read in a statement per kind instead of one per
        delivery or identity: the stored deliveries its dedup keys name, and the
        identities not in the cache. Each statement costs the sqlite3 module's call and
        binding once per batch, where they cost more than the index probe itself."""
        repo.stored = dedup_keys(self.conn, batch)
        cache = repo.cache.idents
        wanted = list(
            {
                key
                for req in batch
                for idents in req.identities
                for i in idents
                if (key := (i.kind, i.value)) not in cache
            }
        )
        for part in range(0, len(wanted), PREFETCH_ROWS):
            keys = wanted[part : part + PREFETCH_ROWS]
            args = [v for key in keys for v in key]
            for kind, value, lead_id in self.conn.execute(*_values(IDENTITIES_SQL, args, 2)):
                cache[(kind, value)] = lead_id
            repo.absent.update(key for key in keys if key not in cache)

    @contextlib.asynccontextmanager
    async def transaction(self, lock_keys: list[str]) -> AsyncIterator[SQLLeadRepo]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield SQLLeadRepo(SQLiteExecutor(conn), self.cache)
            conn.execute("COMMIT")
        except BaseException:
            self.cache.clear()  # it may hold what was just undone
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


# Read ahead by ``SQLiteTransactions.prefetch``: a list of values joined to the table by
# its index ({values}: ``VALUES (?, ?), …``; CROSS JOIN keeps the list the outer loop).
PREFETCH_ROWS = 256
"""Rows of values per statement (SQLite binds at most 32,766 parameters)."""
IDENTITIES_SQL = (
    "WITH k(kind, value) AS ({values}) SELECT i.kind, i.value, i.lead_id FROM k CROSS JOIN identities AS i"
    " WHERE i.kind = k.kind AND i.value = k.value"
)
BY_KEY_SQL = (
    "WITH k(source, i) AS ({values}) SELECT d.id, d.source, d.idempotency_key"
    " FROM k CROSS JOIN deliveries AS d WHERE d.source = k.source AND d.idempotency_key = k.i"
)
# As sql.find_duplicate: by the prefix the index holds, the whole fingerprint compared
# in Python (DedupKeys is keyed by it).
BY_FINGERPRINT_SQL = (
    "WITH k(source, f, since) AS ({values}) SELECT d.id, d.source, d.fingerprint, d.received_at"
    " FROM k CROSS JOIN deliveries AS d WHERE substr(d.fingerprint, 1, 8) = k.f AND d.source = k.source"
    " AND d.received_at >= k.since AND d.status != 'rejected' ORDER BY d.received_at"
)


def _values(sql: str, args: list[Any], columns: int) -> tuple[str, list[Any]]:
    """``sql`` with a list of ``len(args) // columns`` rows of values, and its arguments.
    The list is padded with rows of NULLs (which no ``=`` matches) to a power of two, so
    that the batch sizes give a few statements, not one each: each would be compiled
    anew and push the writer's other statements out of the sqlite3 module's cache."""
    rows = 1 << (len(args) // columns - 1).bit_length()
    row = "(" + ", ".join("?" * columns) + ")"
    padded = args + [None] * (rows * columns - len(args))
    return sql.format(values="VALUES " + ", ".join([row] * rows)), padded


def dedup_keys(conn: sqlite3.Connection, batch: list[WriteRequest]) -> DedupKeys:
    """The stored deliveries the batch's dedup keys name, as ``sql.find_duplicate`` would
    find them one by one."""
    by_key: list[str] = []
    by_print: list[str] = []
    for req in batch:
        d = req.delivery
        if req.replace or not req.dedup or d.status == "rejected":
            continue
        if d.idempotency_key is not None:
            by_key += (d.source, d.idempotency_key)
        elif d.fingerprint is not None and req.dedup_window_seconds > 0:
            since = window_start(d.received_at, req.dedup_window_seconds)
            by_print += (d.source, d.fingerprint[:FINGERPRINT_KEY], since)
    stored = DedupKeys()
    step = 2 * PREFETCH_ROWS
    for part in range(0, len(by_key), step):
        args = by_key[part : part + step]
        for delivery_id, source, key in conn.execute(*_values(BY_KEY_SQL, args, 2)):
            stored.idempotency[(source, key)] = delivery_id
    rows: list[tuple[str, str, str, str]] = []
    step = 3 * PREFETCH_ROWS
    for part in range(0, len(by_print), step):
        args = by_print[part : part + step]
        rows += conn.execute(*_values(BY_FINGERPRINT_SQL, args, 3))
    rows.sort(key=lambda r: r[3])  # oldest first, as DedupKeys keeps them
    for delivery_id, source, fingerprint, received_at in rows:
        # A window seen by two deliveries of the batch gives a row twice: kept once.
        seen = stored.fingerprints.setdefault((source, fingerprint), [])
        if (received_at, delivery_id) not in seen:
            seen.append((received_at, delivery_id))
    return stored


class Checkpointer:
    """Copies the WAL into the database file (a PASSIVE checkpoint: it never blocks the
    writer, and copies only what no reader still needs) from its own connection, on a
    worker thread, whenever the WAL has grown past SQLite's own threshold. Then ``finish``
    has the writer copy the little written meanwhile: SQLite starts the WAL over only
    once all of it is copied, which a copy beside a busy writer never quite reaches."""

    INTERVAL_SECONDS = 0.25
    THRESHOLD_BYTES = 1000 * 4096  # SQLite's default: 1000 pages

    def __init__(self, path: Path, finish: Callable[[], Awaitable[None]]) -> None:
        self.path = path
        self.finish = finish
        self.wal = path.with_name(path.name + "-wal")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-checkpointer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._close_sync)

    async def checkpoint(self) -> None:
        await asyncio.to_thread(self._checkpoint_sync)

    async def _run(self) -> None:
        seen = 0
        while True:
            await asyncio.sleep(self.INTERVAL_SECONDS)
            try:
                wal = self.wal.stat()
            except OSError:
                continue
            # The file keeps its size when SQLite starts it over: nothing written since the
            # last checkpoint (same mtime) means nothing to copy.
            if wal.st_size < self.THRESHOLD_BYTES or wal.st_mtime_ns == seen:
                continue
            seen = wal.st_mtime_ns
            try:
                await self.checkpoint()
                await self.finish()
            except sqlite3.Error as e:
                log.warning("checkpoint failed: %s", type(e).__name__)

    def _checkpoint_sync(self) -> None:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA busy_timeout=0")
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def _close_sync(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _owner_only(path: Path) -> None:
    """The database file is created readable by its owner only; SQLite gives the -wal and
    -shm files the same mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


class SQLiteStore(SQLiteReads):
    dialect = "sqlite"
    overlaps_commit = False  # one writer connection: a batch at a time

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._cache = LeadCache()  # touched only on the writer thread
        self._checkpointer = Checkpointer(path, lambda: self._run(self._checkpoint_sync))
        self._purger: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        _owner_only(self.path)
        await self._run(self._open_sync)
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        # A page cache big enough for the upper levels of every index a page or an export
        # walks (SQLite's default, 2 MiB, re-reads them through the kernel on every seek),
        # and bounded, so that an export's memory stays flat.
        await self._reader.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
        self._reader.row_factory = aiosqlite.Row
        self._checkpointer.start()
        if await pending_count(AioReader(self._reader)):
            self._start_purger()  # an erasure left pending by the last run

    def _open_sync(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations("sqlite"):
            if version in done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, now_rfc3339()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        await self._checkpointer.stop()
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        """Run on the writer thread, after what is already queued there."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("the store is closed")
        return self._conn

    # -- writes -------------------------------------------------------------------------
    async def write_batch(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        try:
            result: list[WriteResult | Exception] = await self._run(self._write_batch_sync, batch)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        return result

    def _write_batch_sync(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        self._cache.trim()
        return run_sync(write_batch(SQLiteTransactions(self._writer(), self._cache), batch))

    def _checkpoint_sync(self) -> None:
        self._writer().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    async def transact(self, work: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` in one write transaction on the writer thread (portable SQL through
        ``sql.Executor``; used by the forwarding outbox)."""
        try:
            result: T = await self._run(self._transact_sync, work)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        return result

    def _transact_sync(self, work: Callable[[Executor], Coroutine[Any, Any, T]]) -> T:
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = run_sync(work(SQLiteExecutor(conn)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def ping(self) -> None:
        try:
            await self._run(self._ping_sync)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e

    def _ping_sync(self) -> None:
        # A committed write (a rolled-back one never reaches the disk, so it cannot tell
        # a full or read-only file system): one row, rewritten in place.
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO readiness (id, checked_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (now_rfc3339(),),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- reads ---------------------------------------------------------------------------
    def _db(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageError("the store is closed")
        return self._reader

    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        async with self._db().execute(sql, args) as cur:
            return list(await cur.fetchall())

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        async with self._db().execute(sql, args) as cur:
            return await cur.fetchone()

    async def _tuples(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        # The cursor's rows as the sqlite3 module makes them (tuples), not ``sqlite3.Row``:
        # ~1,500 instructions an exported event fewer.
        async with self._db().execute(sql, args) as cur:
            cur.row_factory = None
            return list(await cur.fetchall())

    # -- erasure ------------------------------------------------------------------------
    async def erase_lead(self, lead_id: str) -> Erasure | None:
        try:
            reader = AioReader(self._db())
            found = await survey(reader, lead_id)
            if found is None:
                return None
            scanned = await scan(reader, found.needles)
            erasure: Erasure | None = await self._run(self._erase_sync, lead_id, scanned)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        if erasure is None:
            return None
        # A read of our own (an API request in flight) holds the WAL for milliseconds: a
        # few quick tries before answering pending.
        for delay in (0, 0.005, 0.02, 0.05):
            await asyncio.sleep(delay)
            completed_at = await self._purge()
            if completed_at is not None:
                erasure.state, erasure.completed_at = "complete", completed_at
                break
        else:
            self._start_purger()
        erasure.caveat = CAVEATS[erasure.state]
        return erasure

    def _erase_sync(self, lead_id: str, scanned: set[str]) -> Erasure | None:
        tx = SQLiteTransactions(self._writer(), self._cache)

        async def in_transaction() -> Erasure | None:
            async with tx.transaction([]) as repo:
                return await erase(repo.x, lead_id, scanned, new_id(), now_rfc3339(), "pending")

        try:
            return run_sync(in_transaction())
        finally:
            self._cache.clear()  # it may name what was erased

    async def _purge(self) -> str | None:
        """Copy the WAL into the database file beside the writer, then try to truncate it
        from the writer thread (where only what was written since is left to copy). The
        completion time, or None while a reader is in the way (or anything fails: the
        erasure is committed and stays pending, and the purger tries again)."""
        try:
            await self._checkpointer.checkpoint()
            completed_at: str | None = await self._run(self._purge_sync)
        except sqlite3.Error as e:
            log.warning("WAL purge not possible yet: %s", type(e).__name__)
            return None
        return completed_at

    def _purge_sync(self) -> str | None:
        """One try, without waiting, to move every WAL frame into the database file and
        truncate the WAL to nothing; if it worked, every pending erasure is complete (and
        the time is returned). On the writer thread, between batches: no writer of ours is
        in the way, and a reader that is makes it answer "busy" at once (busy timeout 0)
        instead of waiting."""
        conn = self._writer()
        conn.execute("PRAGMA busy_timeout=0")
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        if busy:
            return None
        now = now_rfc3339()
        run_sync(complete_pending(SQLiteExecutor(conn), now))
        return now

    def _start_purger(self) -> None:
        if self._purger is None or self._purger.done():
            self._purger = asyncio.create_task(self._purge_until_done(), name="sqlite-purge")

    async def _purge_until_done(self) -> None:
        delay = 0.02
        while True:
            await asyncio.sleep(delay)
            if await self._purge() is not None:
                log.info("pending erasures complete: the WAL was truncated")
                return
            delay = min(delay * 2, PURGE_RETRY_MAX_SECONDS)

    async def get_erasure(self, erasure_id: str) -> Erasure | None:
        erasure = await get_erasure(AioReader(self._db()), erasure_id)
        if erasure is not None:
            erasure.caveat = CAVEATS[erasure.state]
        return erasure
