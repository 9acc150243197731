"""Prometheus metrics every service exposes at /metrics.

Counters of business facts are counted once the transaction that stored the fact
commits (``count_on_commit``): a batch rolled back and applied again one event at a time
counts each fact once, and an event that ends in the dead-letter topic counts nothing.
Figures that describe the database's state (waiting leads, open breaches, outbox rows)
are read from it when Prometheus scrapes (``ServiceRuntime.gauges``): every instance of
a service answers the same figure, so a dashboard takes their ``max``.

A service run as several worker processes (ingest's ``HTTP_WORKERS``) counts in
prometheus-client's multiprocess mode: ``serve`` gives the workers one directory
(``PROMETHEUS_MULTIPROC_DIR``), and every worker's /metrics answers the sum of all of them.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

__all__ = ["CONTENT_TYPE_LATEST", "count_on_commit", "exposition", "shared_by_workers"]

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
    multiprocess_mode="livemostrecent",
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
    "revops_outbox_pending",
    "Outbox rows not yet delivered and still being tried, read from the database at scrape",
    ["service", "destination"],
    multiprocess_mode="livemostrecent",
)
OUTBOX_FAILED = Gauge(
    "revops_outbox_failed",
    "Outbox rows that gave up (failed_at set, not sent), waiting for `revops outbox retry`; "
    "read from the database at scrape",
    ["service", "destination"],
    multiprocess_mode="livemostrecent",
)
GAUGES_READ_FAILURES = Counter(
    "revops_metrics_read_failures_total",
    "Scrapes whose database-read figures could not be read (the figures keep their last value)",
    ["service"],
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


# --- counting what a transaction stored, once it commits ---------------------------------

_PENDING = "revops.metrics.pending"
_COMMITTED: WeakKeyDictionary[SessionTransaction, bool] = WeakKeyDictionary()


def count_on_commit(session: AsyncSession | Session, record: Callable[[], None]) -> None:
    """Call ``record`` (a counter's ``inc``, a histogram's ``observe``) once the
    transaction now open on ``session`` commits; never, if it or the savepoint it was
    called in rolls back. A fact is counted as often as it is stored: once."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    if transaction is None:  # no transaction: nothing to wait for
        record()
        return
    pending: dict[SessionTransaction, list[Callable[[], None]]] = sync.info.setdefault(_PENDING, {})
    pending.setdefault(transaction, []).append(record)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # Fired by the transaction committing (a savepoint released, or the outermost one),
    # before it is closed: it is still the session's innermost transaction.
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is not None:
        _COMMITTED[transaction] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    pending: dict[SessionTransaction, list[Callable[[], None]]] | None = session.info.get(_PENDING)
    if not pending or transaction not in pending:
        return
    records = pending.pop(transaction)
    if not _COMMITTED.pop(transaction, False):
        return  # rolled back: what it stored is gone, so is what it counted
    if transaction.parent is not None:
        # A released savepoint: its facts stand or fall with the enclosing transaction.
        pending.setdefault(transaction.parent, []).extend(records)
        return
    for record in records:
        record()


# --- the scrape ----------------------------------------------------------------------------


def exposition() -> bytes:
    """The text format of every metric: this process's, or, in multiprocess mode, the sum
    over every worker process that shares the directory."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@contextmanager
def shared_by_workers() -> Iterator[None]:
    """For a server of several worker processes, started within: the workers count into
    one fresh directory (their imports read ``PROMETHEUS_MULTIPROC_DIR``), removed at the
    end. Without it each worker answers its own figures, and consecutive scrapes, served
    by different workers, alternate between their totals. A directory already set in the
    environment is used as it is (and left in place)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    directory = tempfile.mkdtemp(prefix="revops-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(directory, ignore_errors=True)
