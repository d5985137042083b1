"""What the ingest edge hands to storage, and the interface every backend implements.

A backend receives whole batches (``write_batch``): one transaction holds many
deliveries, each isolated by a savepoint, so one bad delivery never takes down its
neighbours, and every answer is sent only after the transaction holding it committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from ..events import Event, Identity
from ..problems import FieldError

Status = Literal["accepted", "unmapped", "rejected"]
BodyFormat = Literal["original", "document", "withheld"]


@dataclass(frozen=True)
class EventQuery:
    """Filters of GET /v1/events (times are RFC 3339 UTC strings, as stored)."""

    source: str | None = None
    type: str | None = None
    lead_id: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass(frozen=True)
class LeadQuery:
    email_sha256: str | None = None
    source: str | None = None
    updated_since: str | None = None


@dataclass(frozen=True)
class DeliveryQuery:
    status: str | None = None
    source: str | None = None
    id_contains: str | None = None
    """Part of a delivery id (the inspector's search box)."""


class Delivery(msgspec.Struct, kw_only=True):
    """One HTTP request a vendor sent, as stored (credentials removed, privacy applied)."""

    id: str
    source: str
    received_at: str
    method: str
    path: str
    content_type: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None
    body_format: BodyFormat
    """original: the bytes as received. document: the parsed document, re-encoded as JSON
    after credentials and privacy-marked fields were removed. withheld: not kept."""
    status: Status
    reasons: list[FieldError] = []
    idempotency_key: str | None = None
    fingerprint: str | None = None
    mapping: str | None = None


class Outgoing(msgspec.Struct, frozen=True, array_like=True):
    """A message to write with the events: event ``event`` (index) to ``destination``."""

    event: int
    destination: str
    max_age: float
    """Seconds after which an undelivered message is given up (``failed``)."""


class WriteRequest(msgspec.Struct, kw_only=True):
    delivery: Delivery
    events: list[Event] = []
    identities: list[list[Identity]] = []
    """Per event, the identities it carries (for lead resolution)."""
    carried: list[Identity] = []
    """Identities in items that gave no event (unmapped, rejected): kept only as keys
    that erasure finds the delivery by (``store/keys.py``)."""
    dedup_window_seconds: int = 600
    dedup: bool = True
    replace: bool = False
    """Replay: the delivery exists; its events are replaced, not doubled."""
    forward: list[Outgoing] = []
    """Messages to write in the same transaction (see receiver/forward); on a replay, only
    for events that differ from the ones they replace."""


class WriteResult(msgspec.Struct):
    delivery_id: str
    duplicate: bool = False


class StorageError(Exception):
    """The store cannot take writes now (disk full, locked, gone)."""


ErasureState = Literal["pending", "complete"]


class Erased(msgspec.Struct, kw_only=True):
    """What an erasure removed, as counts: the record names nobody."""

    leads: int
    """The lead and the ids merged into it."""
    identities: int
    events: int
    deliveries: int


class Erasure(msgspec.Struct):
    """An erasure of a lead. state pending: the rows are gone from every table, but the
    database files still hold old copies of their pages (on SQLite, while another reader
    keeps the write-ahead log); complete: the store purged what it can purge, and caveat
    says what it cannot."""

    id: str
    state: ErasureState
    requested_at: str
    completed_at: str | None
    erased: Erased
    caveat: str = ""


COMMITTING: ContextVar[Callable[[], None] | None] = ContextVar("receiver_committing", default=None)
"""Set by the writer around a batch, for a store that says ``overlaps_commit``: called once
the batch's work is done and only its commit is left, so that the next batch is prepared
and written meanwhile (its answers still wait for their own commit)."""


class Store(Protocol):
    overlaps_commit: bool
    """True where the next batch may be written while one commits (see ``COMMITTING``)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write_batch(self, batch: list[WriteRequest]) -> list[WriteResult | Exception]:
        """Write all in one transaction; one result (or the error of that delivery) each.
        Raises StorageError when the transaction itself cannot commit."""
        ...

    async def ping(self) -> None:
        """Raise StorageError unless a write succeeds now (a real one, on a tiny table)."""
        ...

    async def erase_lead(self, lead_id: str) -> Erasure | None:
        """Remove a lead and everything that names it (``store/erasure.py``); None if the
        lead is unknown. Never waits for readers: what they still hold is purged later."""
        ...

    async def get_erasure(self, erasure_id: str) -> Erasure | None: ...

    # The read side (see store/reads.py): keyset pages, newest first; chunked exports.
    async def live_lead_id(self, lead_id: str) -> str | None: ...

    async def list_events_json(
        self, q: EventQuery, cursor: str | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """A page of events as (id, JSON document): what the API answers, as stored."""
        ...

    async def list_events(self, q: EventQuery, before: str | None, limit: int) -> list[dict[str, Any]]: ...

    def export_events(self, q: EventQuery) -> AsyncIterator[list[tuple[bytes, str | None]]]:
        """Every matching event as stored: (JSON document, its lead now), in chunks."""
        ...

    def iter_events(self, q: EventQuery) -> AsyncIterator[dict[str, Any]]: ...

    async def get_event(self, event_id: str) -> dict[str, Any] | None: ...

    async def get_lead(self, lead_id: str) -> dict[str, Any] | None: ...

    async def list_leads(self, q: LeadQuery, before: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def list_lead_records(self, q: LeadQuery, before: str | None, limit: int) -> list[Any]:
        """A page of lead records (store.reads.LeadRecord), encoded as the API answers."""
        ...

    def export_leads(self, q: LeadQuery) -> AsyncIterator[list[Any]]: ...

    def iter_leads(self, q: LeadQuery) -> AsyncIterator[dict[str, Any]]: ...

    async def list_deliveries(
        self, q: DeliveryQuery, before: str | None, limit: int
    ) -> list[dict[str, Any]]: ...

    async def list_delivery_records(self, q: DeliveryQuery, before: str | None, limit: int) -> list[Any]:
        """A page of delivery records (store.reads.DeliveryRecord), encoded as the API answers."""
        ...

    async def get_delivery_record(self, delivery_id: str) -> dict[str, Any] | None: ...

    async def delivery_ids(self, q: DeliveryQuery) -> list[str]: ...

    async def raw_delivery(self, delivery_id: str) -> Any: ...

    # Summaries for the inspector.
    async def delivery_counts(self, since: str) -> list[dict[str, Any]]:
        """Deliveries received at or after ``since``: ``{source, status, n}`` rows."""
        ...

    async def delivery_minutes(self, since: str) -> dict[str, int]:
        """Deliveries received at or after ``since``, by minute (``2026-01-31T12:34``)."""
        ...

    async def merged_lead_ids(self, lead_id: str) -> list[str]:
        """The ids merged into a live lead (they still resolve to it)."""
        ...
