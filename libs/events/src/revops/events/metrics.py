"""Prometheus metrics every service exposes at /metrics."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "revops_events_consumed_total", "Records read from Kafka", ["service", "topic"]
)
EVENTS_APPLIED = Counter(
    "revops_events_applied_total", "Events applied to the service's schema", ["service", "type"]
)
EVENTS_DEDUPLICATED = Counter(
    "revops_events_deduplicated_total",
    "Events skipped because the inbox shows them applied already",
    ["service", "topic"],
)
EVENTS_DEAD_LETTERED = Counter(
    "revops_events_dead_lettered_total", "Events sent to a dead-letter topic", ["service", "topic"]
)
BATCH_SECONDS = Histogram(
    "revops_batch_seconds",
    "Time to apply and commit one batch",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "revops_consumer_lag",
    "Records behind the end of the partition",
    ["service", "topic", "partition"],
)
INFRA_RETRIES = Counter(
    "revops_consumer_infrastructure_retries_total",
    "Batches retried because Postgres or Kafka was unreachable",
    ["service"],
)
OUTBOX_SENT = Counter(
    "revops_outbox_sent_total", "Outbox rows delivered", ["service", "destination"]
)
OUTBOX_FAILURES = Counter(
    "revops_outbox_failures_total", "Failed outbox deliveries", ["service", "destination"]
)
OUTBOX_PENDING = Gauge(
    "revops_outbox_pending", "Outbox rows not yet delivered", ["service", "destination"]
)
GC_PAUSE_SECONDS = Histogram(
    "revops_gc_pause_seconds",
    "Time the process stood still in one garbage collection, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
# One child per generation, made now: the callback runs inside a collection, which may
# start in the middle of a scrape that holds the histogram's (non-reentrant) lock, so the
# callback must never call labels(), which takes that lock.
_GC_PAUSES = [GC_PAUSE_SECONDS.labels(str(generation)) for generation in range(3)]
_gc_started: list[float] = [0.0]


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _GC_PAUSES[info["generation"]].observe(time.perf_counter() - _gc_started[0])


def watch_gc_pauses() -> None:
    """Time every garbage collection: a full one stops the event loop for as long as it
    takes to walk every object, which shows as a latency spike."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)
