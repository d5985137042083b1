"""The embedded default store: one SQLite file in WAL mode, ``synchronous=FULL``.

All writes go through one connection on one dedicated thread (SQLite has one writer
anyway); the group-commit writer hands it whole batches. Reads use aiosqlite
connections of their own, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiosqlite
import msgspec

from .base import StorageError, WriteRequest, WriteResult
from .migrate import migrations
from .reads import SQLiteReads
from .resolve import run_sync
from .sql import LeadCache, SQLLeadRepo, write_one

_encode = msgspec.json.encode
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)


def email_spellings(email: str) -> set[str]:
    """The ways an email appears in a stored body: as is, URL-encoded, JSON-escaped."""
    e = email.strip().lower()
    return {e, quote(e, safe=""), quote_plus(e), e.replace("/", "\\/")}


class SQLiteExecutor:
    """``sql.Executor`` on a sqlite3 connection: synchronous, never suspends."""

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


class _DeliveryFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class SQLiteStore(SQLiteReads):
    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._cache = LeadCache()  # touched only on the writer thread

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._open_sync)
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        self._reader.row_factory = aiosqlite.Row

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
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (version, name, datetime.now(UTC).isoformat()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- writes -------------------------------------------------------------------------
    async def write_batch(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        try:
            result: list[WriteResult | Exception] = await self._run(self._write_batch_sync, batch)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        return result

    def _write_batch_sync(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        """Optimistically, the whole batch in one transaction. If one delivery in it fails
        (it should not: ids are unique and dedup is checked first), the batch is rolled
        back and written again one delivery per transaction, so only that one fails."""
        conn = self._conn
        if conn is None:
            raise StorageError("the store is closed")
        self._cache.trim()
        try:
            return self._transaction(conn, batch)
        except _DeliveryFailed:
            pass
        results: list[WriteResult | Exception] = []
        for req in batch:
            try:
                results += self._transaction(conn, [req])
            except _DeliveryFailed as e:
                results.append(e.error)
        return results

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[WriteRequest]
    ) -> list[WriteResult | Exception]:
        results: list[WriteResult | Exception] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for req in batch:
                try:
                    results.append(self._write_one(conn, req))
                except (sqlite3.IntegrityError, sqlite3.InterfaceError, ValueError, TypeError) as e:
                    raise _DeliveryFailed(e) from e  # this delivery alone is bad
            conn.execute("COMMIT")
        except BaseException:
            self._cache.clear()  # it may hold what was just undone
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _write_one(self, conn: sqlite3.Connection, req: WriteRequest) -> WriteResult:
        x = SQLiteExecutor(conn)
        return run_sync(write_one(x, SQLLeadRepo(x, self._cache), req))

    async def ping(self) -> None:
        try:
            await self._run(self._ping_sync)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e

    def _ping_sync(self) -> None:
        conn = self._conn
        if conn is None:
            raise StorageError("the store is closed")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

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

    # -- erasure ------------------------------------------------------------------------
    async def erase_lead(self, lead_id: str) -> bool:
        """Delete a lead, its merged-away ids, its events and the deliveries behind them,
        then truncate the WAL, so none of its bytes remain in the files. False if unknown."""
        try:
            found: bool = await self._run(self._erase_sync, lead_id)
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        return found

    def _erase_sync(self, lead_id: str) -> bool:
        conn = self._conn
        if conn is None:
            raise StorageError("the store is closed")
        row = conn.execute("SELECT id, merged_into FROM leads WHERE id = ?", (lead_id,)).fetchone()
        if row is None:
            return False
        live = row[1] or row[0]
        self._cache.clear()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [live] + [r[0] for r in conn.execute("SELECT id FROM leads WHERE merged_into = ?", (live,))]
            marks = ",".join("?" * len(ids))
            deliveries = {
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT delivery_id FROM events WHERE lead_id IN ({marks})",  # noqa: S608
                    ids,
                )
            }
            # Deliveries that produced no event of the lead (rejected ones, say) can still
            # carry its email: find them by every encoding the email may have in a body.
            for (traits,) in conn.execute(f"SELECT traits FROM leads WHERE id IN ({marks})", ids):  # noqa: S608
                email = msgspec.json.decode(traits).get("email")
                for needle in email_spellings(email) if isinstance(email, str) else []:
                    deliveries.update(
                        r[0]
                        for r in conn.execute(
                            "SELECT id FROM deliveries WHERE instr(lower(CAST(body AS TEXT)), ?) > 0",
                            (needle,),
                        )
                    )
            for d in deliveries:
                conn.execute("DELETE FROM events WHERE delivery_id = ?", (d,))
                conn.execute("DELETE FROM deliveries WHERE id = ?", (d,))
            conn.execute(f"DELETE FROM identities WHERE lead_id IN ({marks})", ids)  # noqa: S608
            conn.execute(f"DELETE FROM leads WHERE id IN ({marks})", ids)  # noqa: S608
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # secure_delete zeroed the freed pages in the main file; the WAL still holds the old
        # page images until it is checkpointed and truncated.
        for _ in range(100):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                break
            time.sleep(0.02)  # a reader still holds an older snapshot
        return True
