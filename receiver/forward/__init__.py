"""Forwarding: every canonical event of an accepted delivery, delivered onward to the
configured destinations, signed (Standard Webhooks), at least once.

config (the destinations file) -> routing (which events go where, decided before the
write) -> the store writes the messages with the events (store/sql.py) -> outbox (claims,
attempts, the read API's questions) -> dispatcher (lanes of workers, one per destination,
with a circuit breaker) -> message (the body in its format, the signature) -> transport
(the HTTP client that refuses private addresses).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from ..clock import now_rfc3339
from ..config import Settings
from ..metrics import Metrics
from .config import Destination, ForwardConfigError, load_destinations
from .dispatcher import Forwarder
from .outbox import Outbox, OutboxStore, epoch
from .routing import Router

__all__ = ["Destination", "ForwardConfigError", "Forwarding", "load_destinations"]


@dataclass
class Forwarding:
    destinations: dict[str, Destination]
    router: Router
    outbox: Outbox
    forwarder: Forwarder

    @classmethod
    def build(
        cls,
        destinations: list[Destination],
        store: object,
        metrics: Metrics | None = None,
        pressure: Callable[[], int] | None = None,
    ) -> Forwarding:
        outbox = Outbox(cast(OutboxStore, store))
        return cls(
            {d.name: d for d in destinations},
            Router(destinations),
            outbox,
            Forwarder(outbox, destinations, metrics, pressure),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: object,
        sources: list[str],
        metrics: Metrics | None = None,
        pressure: Callable[[], int] | None = None,
    ) -> Forwarding | None:
        """None when no destinations file is configured (or it lists none). ``pressure``:
        deliveries waiting for the writer (forwarding slows down while there are some)."""
        if settings.destinations_file is None:
            return None
        destinations = load_destinations(settings.destinations_file, settings.env, sources)
        return cls.build(destinations, store, metrics, pressure) if destinations else None

    async def refresh_metrics(self, metrics: Metrics) -> None:
        pending = await self.outbox.pending()
        now = time.time()
        for name in self.destinations:
            count, oldest = pending.get(name, (0, now_rfc3339()))
            metrics.forward_backlog(name, count, max(0.0, now - epoch(oldest)) if count else 0.0)
