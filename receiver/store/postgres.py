"""PostgreSQL: several receiver processes, one store.

Same semantics as SQLite (group commit, answer after commit, the shared write path in
``sql.py``), with one difference: other processes write too. So each batch transaction
first takes transaction-scoped advisory locks on every dedup key and every identity it
is about to use, in sorted order (no deadlock between batches): two processes posting
the same delivery, or the same new person, at the same moment are serialised on that
key, and the second sees what the first committed — one delivery, one lead. Lead rows
are read ``FOR UPDATE`` so a merge never overwrites traits another process just wrote.

``RECEIVER_DATABASE_URL=postgresql://host/db?schema=name`` puts the tables in a schema.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ..clock import now_rfc3339
from .base import StorageError, WriteRequest, WriteResult
from .migrate import migrations
from .reads import PostgresReads
from .sql import LeadCache, SQLLeadRepo, write_one
from .sqlite import email_spellings

MIGRATION_LOCK = 0x5EC1E7E5  # any constant: one migrator at a time across processes
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@lru_cache(maxsize=512)
def pg(sql: str) -> str:
    """``?`` placeholders as ``$1``, ``$2``… (our SQL has no ``?`` inside literals)."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


class PgExecutor:
    """``sql.Executor`` on one asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def one(self, sql: str, args: tuple[Any, ...]) -> Any:
        return await self.conn.fetchrow(pg(sql), *args)

    async def all(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return list(await self.conn.fetch(pg(sql), *args))

    async def run(self, sql: str, args: tuple[Any, ...]) -> None:
        await self.conn.execute(pg(sql), *args)

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        await self.conn.executemany(pg(sql), rows)


class PgLeadRepo(SQLLeadRepo):
    # The row stays ours until commit, so a merge never loses another process's write.
    LOAD_SQL = SQLLeadRepo.LOAD_SQL + " FOR UPDATE"


class _DeliveryFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def lock_keys(batch: list[WriteRequest]) -> list[str]:
    keys: set[str] = set()
    for req in batch:
        d = req.delivery
        if d.idempotency_key is not None:
            keys.add(f"d:{d.source}:{d.idempotency_key}")
        elif d.fingerprint is not None:
            keys.add(f"f:{d.source}:{d.fingerprint}")
        for idents in req.identities:
            keys.update(f"i:{i.kind}:{i.value}" for i in idents)
    return sorted(keys)


class PostgresStore(PostgresReads):
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        self.schema = next((v for k, v in query if k == "schema"), None)
        if self.schema is not None and not _IDENT.match(self.schema):
            raise StorageError(f"invalid schema name {self.schema!r}")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        self.dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        self._pool: Any = None

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
            await self._pool.close()
            self._pool = None

    def _p(self) -> Any:
        if self._pool is None:
            raise StorageError("the store is closed")
        return self._pool

    # -- writes -------------------------------------------------------------------------
    async def write_batch(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        try:
            async with self._p().acquire() as conn:
                try:
                    return await self._transaction(conn, batch)
                except _DeliveryFailed:
                    pass
                results: list[WriteResult | Exception] = []
                for req in batch:
                    try:
                        results += await self._transaction(conn, [req])
                    except _DeliveryFailed as e:
                        results.append(e.error)
                return results
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise StorageError(str(e)) from e

    async def _transaction(self, conn: Any, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        results: list[WriteResult | Exception] = []
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k",
                lock_keys(batch),
            )
            x = PgExecutor(conn)
            repo = PgLeadRepo(x, LeadCache())  # other processes write: nothing outlives the batch
            for req in batch:
                try:
                    results.append(await write_one(x, repo, req))
                except (
                    asyncpg.IntegrityConstraintViolationError,
                    asyncpg.DataError,
                    ValueError,
                    TypeError,
                ) as e:
                    raise _DeliveryFailed(e) from e
        return results

    async def ping(self) -> None:
        try:
            async with self._p().acquire() as conn:
                if await conn.fetchval("SELECT pg_is_in_recovery()"):
                    raise StorageError("PostgreSQL is read-only (in recovery)")
        except (OSError, asyncpg.PostgresError) as e:
            raise StorageError(str(e)) from e

    # -- reads --------------------------------------------------------------------------
    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]:
        return list(await self._p().fetch(pg(sql), *args))

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any:
        return await self._p().fetchrow(pg(sql), *args)

    # -- erasure ------------------------------------------------------------------------
    async def erase_lead(self, lead_id: str) -> bool:
        """As on SQLite, minus the file guarantee: PostgreSQL keeps dead row versions until
        VACUUM and in its WAL until recycled (see README, "Scaling out")."""
        import msgspec

        async with self._p().acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT id, merged_into FROM leads WHERE id = $1", lead_id)
            if row is None:
                return False
            live = row["merged_into"] or row["id"]
            ids = [live] + [
                r[0] for r in await conn.fetch("SELECT id FROM leads WHERE merged_into = $1", live)
            ]
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k",
                sorted(f"i:{r[0]}:{r[1]}" for r in await conn.fetch(
                    "SELECT kind, value FROM identities WHERE lead_id = ANY($1::text[])", ids)),
            )  # fmt: skip
            deliveries = {
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT delivery_id FROM events WHERE lead_id = ANY($1::text[])", ids
                )
            }
            for (traits,) in await conn.fetch("SELECT traits FROM leads WHERE id = ANY($1::text[])", ids):
                email = msgspec.json.decode(traits).get("email")
                for needle in email_spellings(email) if isinstance(email, str) else []:
                    deliveries.update(
                        r[0]
                        for r in await conn.fetch(
                            "SELECT id FROM deliveries WHERE strpos(lower(encode(body, 'escape')), $1) > 0",
                            needle,
                        )
                    )
            await conn.execute("DELETE FROM events WHERE delivery_id = ANY($1::text[])", list(deliveries))
            await conn.execute("DELETE FROM deliveries WHERE id = ANY($1::text[])", list(deliveries))
            await conn.execute("DELETE FROM identities WHERE lead_id = ANY($1::text[])", ids)
            await conn.execute("DELETE FROM leads WHERE id = ANY($1::text[])", ids)
        return True
