"""Which events of a write become messages, and to which destinations.

Decided before storage, from what the write request already knows (status, source,
type); the store then writes the messages in the transaction that stores the events.
"""

from __future__ import annotations

from ..store.base import Outgoing, WriteRequest
from .config import Destination


class Router:
    def __init__(self, destinations: list[Destination]) -> None:
        self.destinations = destinations
        self._targets: dict[tuple[str, str], list[Outgoing]] = {}

    def targets(self, source: str, event_type: str, index: int = 0) -> list[Outgoing]:
        key = (source, event_type)
        hit = self._targets.get(key)
        if hit is None:
            hit = self._targets[key] = [
                Outgoing(0, d.name, d.max_age) for d in self.destinations if d.matches(source, event_type)
            ]
        return [Outgoing(index, o.destination, o.max_age) for o in hit] if index else hit

    def route(self, request: WriteRequest) -> None:
        """Fill ``request.forward``: nothing for a rejected or unmapped delivery (a duplicate
        is found by the store, which then writes nothing at all)."""
        if request.delivery.status != "accepted" or not self.destinations:
            request.forward = []
            return
        out: list[Outgoing] = []
        for i, e in enumerate(request.events):
            out += self.targets(e.source, e.type, i)
        request.forward = out
