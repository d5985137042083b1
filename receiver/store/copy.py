"""Copy a SQLite store into PostgreSQL (``receiver migrate-store``).

Rows are streamed table by table in chunks, and inserted with ON CONFLICT DO NOTHING,
so an interrupted copy can simply be run again. The per-lead summary (``lead_sources``)
is not copied but computed again from the copied events. Stop the receivers (or point them at
PostgreSQL) first: deliveries arriving in SQLite during the copy are not followed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg

from .postgres import SUMMARIZE_ALL, PostgresStore

TABLES = {  # in foreign-key order
    "deliveries": ["id", "source", "received_at", "method", "path", "content_type", "query", "headers",
                   "body", "body_format", "status", "reasons", "idempotency_key", "fingerprint", "mapping"],
    "events": ["id", "delivery_id", "source", "type", "source_type", "occurred_at", "received_at",
               "lead_id", "anonymous_id", "data"],
    "leads": ["id", "merged_into", "created_at", "updated_at", "traits", "trait_times"],
    "identities": ["kind", "value", "source", "known", "lead_id", "first_seen_at"],
    # The forwarding outbox: messages still pending are sent from PostgreSQL.
    "messages": ["id", "destination", "event_id", "delivery_id", "state", "created_at", "next_attempt_at",
                 "expires_at", "attempts", "lease_owner", "lease_until", "settled_at", "reason", "body"],
    "message_attempts": ["message_id", "n", "at", "status", "duration_ms", "error"],
    "destination_state": ["name", "disabled_at", "reason"],
    "delivery_keys": ["kind", "value", "delivery_id"],
    "erasures": ["id", "state", "requested_at", "completed_at", "leads", "identities", "events",
                 "deliveries"],
}  # fmt: skip


async def copy_sqlite_to_postgres(
    sqlite_path: Path, url: str, progress: Callable[[str, int], None] | None = None, chunk: int = 2000
) -> dict[str, int]:
    target = PostgresStore(url)
    await target.open()  # applies PostgreSQL's migrations
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    copied: dict[str, int] = {}
    try:
        async with target._p().acquire() as conn:
            for table, columns in TABLES.items():
                marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
                cur = source.execute(f"SELECT {', '.join(columns)} FROM {table}")  # noqa: S608
                n = 0
                while rows := cur.fetchmany(chunk):
                    if table == "identities":
                        rows = [(*r[:3], bool(r[3]), *r[4:]) for r in rows]
                    elif table == "erasures":
                        # Pending there means "the SQLite WAL still holds it": nothing to do here.
                        rows = [(r[0], "complete", r[2], r[3] or r[2], *r[4:]) for r in rows]
                    await conn.executemany(insert, rows)
                    n += len(rows)
                    if progress is not None:
                        progress(table, len(rows))
                copied[table] = n
            await rebuild_lead_sources(conn)
    except asyncpg.PostgresError:
        raise
    finally:
        source.close()
        await target.close()
    return copied


async def rebuild_lead_sources(conn: asyncpg.Connection) -> None:
    """The leads' sources (``lead_sources``) computed from the copied events and identities
    (whatever version of the SQLite store they came from), replacing what an earlier run of
    the copy made, and each lead's summary from them."""
    async with conn.transaction():
        await conn.execute("DELETE FROM lead_sources")
        await conn.execute(
            "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"
            " SELECT lead_id, source, count(*), min(occurred_at), max(occurred_at) FROM events"
            " WHERE lead_id IS NOT NULL GROUP BY lead_id, source"
        )
        await conn.execute(
            "INSERT INTO lead_sources (lead_id, source, events, first_seen_at, last_seen_at)"
            " SELECT DISTINCT lead_id, source, 0, NULL, NULL FROM identities WHERE lead_id IS NOT NULL"
            " ON CONFLICT DO NOTHING"
        )
        await conn.execute(SUMMARIZE_ALL)
