"""Renewals' business figures at /metrics (docs/METRICS.md): renewals created, counted
once their transaction commits, and the age of the last weekly forecast snapshot, read
from the snapshots table when Prometheus scrapes."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from revops.events.metrics import count_on_commit
from revops.events.service import GaugeReader
from revops.renewals import models as m
from revops.renewals.forecast import Clock

RENEWALS_CREATED = Counter(
    "revops_renewals_created_total", "Renewal opportunities created on a Closed Won"
)
# Labelled so that it is absent, not 0, until the first snapshot: an age of 0 would read
# as a fresh snapshot where none was ever taken.
SNAPSHOT_AGE = Gauge(
    "revops_forecast_snapshot_age_seconds",
    "Since the last scheduled forecast snapshot was taken (absent before the first)",
    ["schedule"],
    multiprocess_mode="livemostrecent",
)


def count_created(session: Session, count: int) -> None:
    if count:
        count_on_commit(session, lambda: RENEWALS_CREATED.inc(count))


def read_snapshot_age(clock: Clock) -> GaugeReader:
    """On the scheduler's clock; a snapshot taken on request says nothing about the
    schedule: only scheduled ones count."""

    async def read(session: AsyncSession) -> None:
        s = m.snapshots
        taken_at = await session.scalar(
            select(s.c.taken_at)
            .where(s.c.scheduled_at.is_not(None))
            .order_by(s.c.scheduled_at.desc())
            .limit(1)
        )
        if taken_at is not None:
            SNAPSHOT_AGE.labels("weekly").set(max((clock() - taken_at).total_seconds(), 0.0))

    return read
