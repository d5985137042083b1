"""Prometheus metrics: deliveries by source and outcome, ingest latency, queue depth, and
forwarding (attempts by destination and outcome, pending messages, oldest pending age)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "receiver_deliveries",
            "Deliveries by source and outcome (accepted, unmapped, duplicate, rejected, ...)",
            ["source", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "receiver_ingest_seconds",
            "Time from request to answer, storage commit included",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str], Any] = {}
        self._histograms: dict[str, Any] = {}
        depth = Gauge("receiver_queue_depth", "Deliveries waiting for the writer", registry=self.registry)
        depth.set_function(lambda: float(queue_depth()))

        self.forward_attempts = Counter(
            "receiver_forward_attempts",
            "Forwarding attempts by destination and outcome (delivered, http_4xx, http_5xx, timeout,"
            " error, refused)",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.forward_pending = Gauge(
            "receiver_forward_pending_messages",
            "Messages waiting to be delivered, by destination",
            ["destination"],
            registry=self.registry,
        )
        self.forward_oldest = Gauge(
            "receiver_forward_oldest_pending_seconds",
            "Age of the oldest message waiting to be delivered, by destination",
            ["destination"],
            registry=self.registry,
        )

    def forward_attempt(self, destination: str, outcome: str) -> None:
        self.forward_attempts.labels(destination, outcome).inc()

    def forward_backlog(self, destination: str, pending: int, oldest_seconds: float) -> None:
        self.forward_pending.labels(destination).set(pending)
        self.forward_oldest.labels(destination).set(oldest_seconds)

    def observe(self, source: str, status: str, seconds: float) -> None:
        # Looking a labelled child up costs more than using it: keep them.
        counter = self._counters.get((source, status))
        if counter is None:
            counter = self._counters[(source, status)] = self.deliveries.labels(source, status)
        histogram = self._histograms.get(source)
        if histogram is None:
            histogram = self._histograms[source] = self.latency.labels(source)
        counter.inc()
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
