"""Prometheus metrics: deliveries by source and outcome, ingest latency, queue depth, and
forwarding (attempts by destination and outcome, pending messages, oldest pending age)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.ingest = IngestStats()
        self.registry.register(self.ingest)
        self.observe = self.ingest.observe  # once per delivery: no call in between
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

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: Upper bounds of the ingest latency buckets, in seconds (+Inf follows).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class IngestStats:
    """``receiver_deliveries`` (by source and outcome) and ``receiver_ingest_seconds`` (by
    source), counted as plain numbers by the event loop and made into metric families
    when scraped: prometheus_client's own counter and histogram take locks and a dozen
    Python calls per update, a few microseconds of every delivery. Exposed as theirs are
    (``_total``, ``_bucket``, ``_count``, ``_sum``, ``_created``); updated and read on the
    event loop only."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.counts_created: dict[tuple[str, str], float] = {}
        self.latency: dict[str, list[float]] = {}
        """Per source: the count in each bucket (not cumulative), +Inf's last, then the sum."""
        self.latency_created: dict[str, float] = {}

    def observe(self, source: str, status: str, seconds: float) -> None:
        key = (source, status)
        n = self.counts.get(key)
        if n is None:
            n = 0
            self.counts_created[key] = time.time()
        self.counts[key] = n + 1
        buckets = self.latency.get(source)
        if buckets is None:
            buckets = self.latency[source] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            self.latency_created[source] = time.time()
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds
        buckets[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "receiver_deliveries",
            "Deliveries by source and outcome (accepted, unmapped, duplicate, rejected, ...)",
            labels=["source", "status"],
        )
        for key, n in self.counts.items():
            deliveries.add_metric(list(key), n, created=self.counts_created[key])
        yield deliveries
        latency = HistogramMetricFamily(
            "receiver_ingest_seconds",
            "Time from request to answer, storage commit included",
            labels=["source"],
        )
        bounds = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]  # as prometheus_client writes them
        for source, buckets in self.latency.items():
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            for bound, count in zip(bounds, buckets, strict=False):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([source], cumulative, buckets[-1])
            latency.samples.append(
                Sample("receiver_ingest_seconds_created", {"source": source}, self.latency_created[source])
            )
        yield latency
