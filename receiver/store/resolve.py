"""Identity resolution (docs/events.md), once, for every backend.

The algorithm is written against ``LeadRepo``, a handful of storage operations. It is
async so that PostgreSQL can await its driver; SQLite's repository never suspends, and
its writer thread drives the coroutine to the end in one step (``run_sync``).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from ..events import Event, Identity
from ..leads import NO_LEAD_TYPES, merge_lead, merge_leads

T = TypeVar("T")
Traits = tuple[dict[str, Any], dict[str, str]]
"""Flat traits and, per trait, the occurred_at of the event that set it."""


class LeadRepo(Protocol):
    async def identity_lead(self, ident: Identity) -> tuple[bool, str | None]:
        """(known to the store, the lead it points at)."""
        ...

    async def live_id(self, lead_id: str) -> str:
        """The lead an id resolves to now (itself, or the lead it was merged into)."""
        ...

    async def load(self, lead_id: str) -> Traits: ...

    async def save(self, lead_id: str, traits: Traits, now: str) -> None: ...

    async def touch(self, lead_id: str, now: str) -> None: ...

    async def create_lead(self, now: str) -> str: ...

    async def add_identity(self, ident: Identity, source: str, lead_id: str | None, seen_at: str) -> None: ...

    async def link_identity(self, ident: Identity, lead_id: str) -> None: ...

    async def merge_into(self, survivor: str, loser: str, now: str) -> None:
        """Point the loser (and whatever was merged into it), its identities and events at
        the survivor; clear the loser's traits."""
        ...

    async def adopt_anonymous(self, lead_id: str, source: str, anonymous_id: str) -> list[tuple[Any, str]]:
        """Give unowned events with this anonymous id to the lead; their (lead traits, occurred_at)."""
        ...


async def resolve(repo: LeadRepo, event: Event, identities: list[Identity], now: str) -> str | None:
    """The lead of an event, creating, linking or merging leads as needed; None when the
    event names nobody known (anonymous only, or a test)."""
    if event.type in NO_LEAD_TYPES or not identities:
        return None
    found: dict[Identity, str | None] = {}
    for ident in identities:
        exists, lead = await repo.identity_lead(ident)
        if exists:
            found[ident] = lead
    live: set[str] = set()
    for lid in found.values():  # a loop, not an async comprehension: no coroutine of its own
        if lid is not None:
            live.add(await repo.live_id(lid))
    leads = sorted(live)
    if not leads and not any(i.known for i in identities):
        # Anonymous only, and not linked to anyone yet: remember the id, no lead.
        for ident in identities:
            if ident not in found:
                await repo.add_identity(ident, event.source, None, event.received_at)
        return None
    if not leads:
        lead_id = await repo.create_lead(now)
    else:
        # UUIDv7 ids sort by creation: the smallest is the oldest lead, which survives.
        lead_id = leads[0]
        if len(leads) > 1:
            traits = await repo.load(lead_id)
            for loser in leads[1:]:
                other = await repo.load(loser)
                merge_leads(traits[0], traits[1], other[0], other[1])
                await repo.merge_into(lead_id, loser, now)
            await repo.save(lead_id, traits, now)
    for ident in identities:
        if ident not in found:
            await repo.add_identity(ident, event.source, lead_id, event.received_at)
        elif found[ident] is None:
            # An anonymous id meets a person: it and its earlier events join the lead.
            await repo.link_identity(ident, lead_id)
            adopted = await repo.adopt_anonymous(lead_id, event.source, ident.value)
            if adopted:
                traits = await repo.load(lead_id)
                changed = False
                for lead, occurred_at in adopted:
                    if lead:
                        changed |= merge_lead(traits[0], traits[1], lead, occurred_at)
                if changed:
                    await repo.save(lead_id, traits, now)
    if event.lead:
        traits = await repo.load(lead_id)
        if merge_lead(traits[0], traits[1], event.lead, event.occurred_at):
            await repo.save(lead_id, traits, now)
            return lead_id
    await repo.touch(lead_id, now)
    return lead_id


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (a synchronous repository) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a synchronous repository suspended")
