"""The outbox in the store: claiming due messages, recording attempts, and what the read
API and the command line ask of it. Portable SQL over the store's ``sql.Executor``.

Claims are leases (``lease_owner``, ``lease_until``) so that several receivers on one
PostgreSQL (or a ``receiver forward`` beside a server on one SQLite file) never send a
message at the same time; on PostgreSQL the claim also skips rows another claimer is
locking (``FOR UPDATE SKIP LOCKED``). A lease that outlives its process expires and the
message is claimed again: at least once, never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from ..clock import rfc3339_epoch
from ..ids import new_id
from ..store.sql import INSERT_MESSAGE, Executor

T = TypeVar("T")
State = Literal["pending", "delivered", "failed"]
STATES: tuple[State, ...] = ("pending", "delivered", "failed")


class OutboxStore(Protocol):
    """What the outbox needs of a backend (``SQLiteStore``, ``PostgresStore``)."""

    dialect: str

    async def transact(self, work: Callable[[Executor], Coroutine[Any, Any, T]]) -> T: ...

    async def _all(self, sql: str, args: tuple[Any, ...] | list[Any]) -> list[Any]: ...

    async def _one(self, sql: str, args: tuple[Any, ...] | list[Any]) -> Any: ...


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339).timestamp()


class Claimed(msgspec.Struct):
    """A message this process holds the lease of, about to be sent."""

    id: str
    destination: str
    event_id: str
    body: bytes
    attempts: int
    """Attempts made before this one."""
    expires_at: float


class Outcome(msgspec.Struct, kw_only=True):
    """One attempt, and what it means for its message."""

    message_id: str
    destination: str
    at: float
    status: int | None
    duration_ms: int
    error: str | None
    state: State
    next_attempt_at: float
    reason: str | None = None
    gone: bool = False
    """The destination answered 410 Gone: it is disabled until re-enabled."""


class Cycle(msgspec.Struct):
    claimed: dict[str, list[Claimed]]
    disabled: set[str]
    next_due: dict[str, float]
    """Per asked destination, when its earliest unclaimed pending message is due."""


class Outbox:
    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        pg = store.dialect == "postgres"
        self._skip_locked = " FOR UPDATE SKIP LOCKED" if pg else ""
        # One fixed statement for a list of ids, whatever its length.
        self._in_ids = "= ANY(?::text[])" if pg else "IN (SELECT value FROM json_each(?))"
        self._ids: Callable[[list[str]], Any] = (
            list if pg else (lambda ids: msgspec.json.encode(ids).decode())
        )

    # -- the dispatcher's one transaction per cycle -----------------------------------------
    async def cycle(
        self,
        owner: str,
        outcomes: list[Outcome],
        released: list[str],
        wants: dict[str, tuple[int, float]],
        sweep: bool,
    ) -> Cycle:
        """Record outcomes, give back unsent claims, fail expired messages (when ``sweep``),
        then claim for each destination of ``wants`` (how many, lease seconds)."""
        now = time.time()

        async def work(x: Executor) -> Cycle:
            await self._record(x, owner, outcomes)
            if released:
                await x.run(
                    f"UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id {self._in_ids}"  # noqa: S608
                    " AND lease_owner = ?",
                    (self._ids(released), owner),
                )
            stamp = rfc3339_epoch(now)
            if sweep:
                await x.run(
                    "UPDATE messages SET state = 'failed', settled_at = ?, reason = 'max_age reached'"
                    " WHERE state = 'pending' AND expires_at < ?"
                    " AND (lease_until IS NULL OR lease_until < ?)",
                    (stamp, stamp, stamp),
                )
            disabled = {r[0] for r in await x.all("SELECT name FROM destination_state", ())}
            claimed: dict[str, list[Claimed]] = {}
            next_due: dict[str, float] = {}
            for name, (n, lease) in wants.items():
                if name in disabled:
                    continue
                if n > 0:
                    claimed[name] = await self._claim(x, owner, name, n, now, lease)
                row = await x.one(
                    "SELECT min(next_attempt_at) FROM messages WHERE destination = ? AND state = 'pending'"
                    " AND (lease_until IS NULL OR lease_until < ?)",
                    (name, stamp),
                )
                if row is not None and row[0] is not None:
                    next_due[name] = epoch(row[0])
            return Cycle(claimed, disabled, next_due)

        return await self.store.transact(work)

    async def _claim(
        self, x: Executor, owner: str, name: str, n: int, now: float, lease: float
    ) -> list[Claimed]:
        stamp = rfc3339_epoch(now)
        rows = await x.all(
            "UPDATE messages SET lease_owner = ?, lease_until = ? WHERE id IN ("  # noqa: S608
            "SELECT id FROM messages WHERE destination = ? AND state = 'pending' AND next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at LIMIT ?"
            f"{self._skip_locked}) RETURNING id, event_id, body, attempts, expires_at",
            (owner, rfc3339_epoch(now + lease), name, stamp, stamp, n),
        )
        out = [Claimed(r[0], name, r[1], bytes(r[2]), r[3], epoch(r[4])) for r in rows]
        out.sort(key=lambda c: c.id)  # oldest first
        return out

    async def _record(self, x: Executor, owner: str, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        numbered: dict[str, int] = {}
        delivered = [o for o in outcomes if o.state == "delivered"]
        if delivered:
            rows = await x.all(
                "UPDATE messages SET state = 'delivered', attempts = attempts + 1, settled_at = ?,"  # noqa: S608
                " reason = NULL, body = NULL, lease_owner = NULL, lease_until = NULL"
                f" WHERE id {self._in_ids} RETURNING id, attempts",
                (rfc3339_epoch(time.time()), self._ids([o.message_id for o in delivered])),
            )
            numbered.update((r[0], r[1]) for r in rows)
        for o in outcomes:
            if o.state == "delivered":
                continue
            row = await x.one(
                "UPDATE messages SET state = ?, attempts = attempts + 1, next_attempt_at = ?, settled_at = ?,"
                " reason = ?, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND state = 'pending' RETURNING id, attempts",
                (
                    o.state,
                    rfc3339_epoch(o.next_attempt_at),
                    rfc3339_epoch(o.at) if o.state == "failed" else None,
                    o.reason,
                    o.message_id,
                ),
            )
            if row is not None:
                numbered[row[0]] = row[1]
        # Only for messages still there (erasure may have removed one meanwhile).
        await x.many(
            "INSERT INTO message_attempts (message_id, n, at, status, duration_ms, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (o.message_id, numbered[o.message_id], rfc3339_epoch(o.at), o.status, o.duration_ms, o.error)
                for o in outcomes
                if o.message_id in numbered
            ],
        )
        for o in outcomes:
            if o.gone:
                await self._disable(
                    x, o.destination, rfc3339_epoch(o.at), "the destination answered 410 Gone"
                )

    @staticmethod
    async def _disable(x: Executor, name: str, at: str, reason: str) -> None:
        await x.run(
            "INSERT INTO destination_state (name, disabled_at, reason) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET disabled_at = excluded.disabled_at, reason = excluded.reason",
            (name, at, reason),
        )

    async def release_all(self, owner: str, ids: list[str]) -> None:
        """Give back claims that will not be sent (the process stops)."""
        if not ids:
            return

        async def work(x: Executor) -> None:
            await x.run(
                f"UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id {self._in_ids}"  # noqa: S608
                " AND lease_owner = ?",
                (self._ids(ids), owner),
            )

        await self.store.transact(work)

    # -- what the read API shows and steers ---------------------------------------------------
    async def counts(self) -> dict[str, dict[str, Any]]:
        """Per destination: messages by state, and the oldest pending one's creation time."""
        out: dict[str, dict[str, Any]] = {}
        for r in await self.store._all(
            "SELECT destination, state, count(*) AS n FROM messages GROUP BY destination, state", ()
        ):
            out.setdefault(r["destination"], {})[r["state"]] = r["n"]
        for name, oldest in (await self.pending()).items():
            out.setdefault(name, {})["oldest_pending_at"] = oldest[1]
        return out

    async def pending(self) -> dict[str, tuple[int, str]]:
        """Per destination: (pending messages, creation time of the oldest)."""
        rows = await self.store._all(
            "SELECT destination, count(*) AS n, min(created_at) AS oldest FROM messages"
            " WHERE state = 'pending' GROUP BY destination",
            (),
        )
        return {r["destination"]: (r["n"], r["oldest"]) for r in rows}

    async def disabled(self) -> dict[str, dict[str, str]]:
        rows = await self.store._all("SELECT name, disabled_at, reason FROM destination_state", ())
        return {r["name"]: {"disabled_at": r["disabled_at"], "reason": r["reason"]} for r in rows}

    async def list_messages(
        self,
        destination: str | None,
        state: str | None,
        event_id: str | None,
        before: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        where, args = [], []
        for column, value in (("destination", destination), ("state", state), ("event_id", event_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if before:
            where.append("id < ?")
            args.append(before)
        sql = "SELECT * FROM messages" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        rows = await self.store._all(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
        return await self._with_attempts(rows)

    async def get_message(self, message_id: str) -> dict[str, Any] | None:
        row = await self.store._one("SELECT * FROM messages WHERE id = ?", (message_id,))
        return None if row is None else (await self._with_attempts([row]))[0]

    async def _with_attempts(self, rows: list[Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for a in await self.store._all(
            f"SELECT * FROM message_attempts WHERE message_id {self._in_ids} ORDER BY message_id, n",  # noqa: S608
            (self._ids(ids),),
        ):
            attempts[a["message_id"]].append(
                {"at": a["at"], "status": a["status"], "duration_ms": a["duration_ms"], "error": a["error"]}
            )
        return [
            {
                "id": r["id"],
                "destination": r["destination"],
                "event_id": r["event_id"],
                "delivery_id": r["delivery_id"],
                "state": r["state"],
                "created_at": r["created_at"],
                "next_attempt_at": r["next_attempt_at"] if r["state"] == "pending" else None,
                "expires_at": r["expires_at"],
                "settled_at": r["settled_at"],
                "reason": r["reason"],
                "attempts": attempts[r["id"]],
            }
            for r in rows
        ]

    async def retry(self, message_id: str, max_age: float) -> bool:
        """A failed (or pending) message: due now, with a fresh ``max_age``. False if it is
        not retryable (delivered, or unknown)."""
        now = time.time()

        async def work(x: Executor) -> bool:
            row = await x.one(
                "UPDATE messages SET state = 'pending', next_attempt_at = ?, expires_at = ?,"
                " settled_at = NULL, reason = NULL WHERE id = ? AND state <> 'delivered' RETURNING id",
                (rfc3339_epoch(now), rfc3339_epoch(now + max_age), message_id),
            )
            return row is not None

        return await self.store.transact(work)

    async def retry_failed(self, destination: str, max_age: float) -> int:
        now = time.time()

        async def work(x: Executor) -> int:
            rows = await x.all(
                "UPDATE messages SET state = 'pending', next_attempt_at = ?, expires_at = ?,"
                " settled_at = NULL, reason = NULL WHERE destination = ? AND state = 'failed' RETURNING id",
                (rfc3339_epoch(now), rfc3339_epoch(now + max_age), destination),
            )
            return len(rows)

        return await self.store.transact(work)

    async def enable(self, destination: str) -> bool:
        """Re-enable a destination a 410 disabled; its pending messages become due now.
        True if it was disabled."""
        stamp = rfc3339_epoch(time.time())

        async def work(x: Executor) -> bool:
            row = await x.one("DELETE FROM destination_state WHERE name = ? RETURNING name", (destination,))
            if row is not None:
                await x.run(
                    "UPDATE messages SET next_attempt_at = ? WHERE destination = ? AND state = 'pending'",
                    (stamp, destination),
                )
            return row is not None

        return await self.store.transact(work)

    # -- the command line: send stored events again --------------------------------------------
    async def enqueue(
        self, destination: str, max_age: float, events: Iterable[tuple[str, str, bytes]]
    ) -> list[str]:
        """New messages for stored events ``(event id, delivery id, event JSON)``; their ids."""
        now = time.time()
        stamp, until = rfc3339_epoch(now), rfc3339_epoch(now + max_age)
        rows = [(new_id(), destination, e, d, stamp, stamp, until, body) for e, d, body in events]
        if rows:

            async def work(x: Executor) -> None:
                await x.many(INSERT_MESSAGE, rows)

            await self.store.transact(work)
        return [r[0] for r in rows]

    async def states(self, ids: list[str]) -> dict[str, int]:
        """How many of these messages are in each state (``retrying``: pending, tried)."""
        out: dict[str, int] = {}
        for start in range(0, len(ids), 1000):
            for r in await self.store._all(
                "SELECT CASE WHEN state = 'pending' AND attempts > 0 THEN 'retrying' ELSE state END AS s,"  # noqa: S608
                f" count(*) AS n FROM messages WHERE id {self._in_ids} GROUP BY 1",
                (self._ids(ids[start : start + 1000]),),
            ):
                out[r["s"]] = out.get(r["s"], 0) + r["n"]
        return out
