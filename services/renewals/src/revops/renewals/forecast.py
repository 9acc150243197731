"""Forecast figures from the stored history: the as-of query, snapshots stored once per
scheduled time, and the weekly scheduler that takes them (catching up missed weeks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import admin
from revops.events.catalogue import SnapshotTaken, SnapshotTakenEvent, derived_event_id, make_event
from revops.events.outbox import add_event
from revops.events.service import ServiceRuntime
from revops.renewals import models as m
from revops.renewals.domain.renewals import RenewalStatus
from revops.renewals.domain.snapshot import (
    Forecast,
    OpportunityAsOf,
    OpportunityGroup,
    Periods,
    RenewalAsOf,
    RenewalHistory,
    aggregate,
    forecast_json,
    periods_for,
    renewal_as_of,
)
from revops.renewals.domain.stages import ForecastCategory, Stage, StageKind
from revops.renewals.settings import RenewalsSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SNAPSHOT_NAMESPACE = uuid.UUID("0b0e6a4c-64c2-5d0f-8f7c-2f3d1f0a9e51")

# Each opportunity as it stood at :as_of: the version in force then.
AS_OF_QUERY = text(
    """
    SELECT h.opportunity_id, h.owner_id, h.stage, h.stage_order, h.stage_kind, h.amount,
           h.forecast_category, h.closed_at, h.is_renewal, o.nbm_at, o.qualified_at
      FROM opportunity_history h
      JOIN opportunities o ON o.opportunity_id = h.opportunity_id
     WHERE h.at <= :as_of AND (h.valid_to IS NULL OR h.valid_to > :as_of)
    """
)


# The same, grouped the way a snapshot counts them (``OpportunityGroup``): the database
# sends a few hundred groups instead of 100,000 rows. The three flags are the domain's
# ``group_of`` predicates, spelled in SQL (the integration tests compare both paths).
GROUPS_AS_OF_QUERY = text(
    """
    SELECT h.owner_id, h.stage, h.stage_order, h.stage_kind, h.forecast_category,
           coalesce(NOT h.is_renewal AND o.nbm_at > :period_start
                    AND o.nbm_at <= :as_of, false) AS nbm_in_period,
           coalesce(NOT h.is_renewal AND o.qualified_at > :period_start
                    AND o.qualified_at <= :as_of, false) AS qualified_in_period,
           coalesce(h.closed_at >= :quarter_start
                    AND h.closed_at <= :as_of, false) AS closed_in_quarter,
           count(*) AS n, coalesce(sum(h.amount), 0) AS amount
      FROM opportunity_history h
      JOIN opportunities o ON o.opportunity_id = h.opportunity_id
     WHERE h.at <= :as_of AND (h.valid_to IS NULL OR h.valid_to > :as_of)
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    """
)


# Each renewal with the stage of the opportunity it renews, and of its own CRM
# opportunity, in force at :as_of (the versions' at <= :as_of < valid_to).
RENEWALS_AS_OF_QUERY = text(
    """
    SELECT r.renewal_id, r.owner_id, r.amount, r.close_date, r.status, r.ended_at,
           src.stage_kind AS source_kind, src.at AS source_since, own.stage_kind AS own_kind
      FROM renewals r
      JOIN opportunity_history src
        ON src.opportunity_id = r.source_opportunity_id
       AND src.at <= :as_of AND (src.valid_to IS NULL OR src.valid_to > :as_of)
      LEFT JOIN opportunity_history own
        ON own.opportunity_id = r.crm_opportunity_id
       AND own.at <= :as_of AND (own.valid_to IS NULL OR own.valid_to > :as_of)
    """
)


def real_clock() -> datetime:
    return datetime.now(UTC)


async def opportunities_as_of(session: AsyncSession, as_of: datetime) -> list[OpportunityAsOf]:
    # The hash join of 100,000 opportunities stays in memory, not in temp files.
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    result = await session.execute(AS_OF_QUERY, {"as_of": as_of})
    stages: dict[tuple[str, int | None, str], Stage] = {}
    rows: list[OpportunityAsOf] = []
    for r in result:
        stage = None
        if r.stage is not None and r.stage_kind is not None:
            key = (r.stage, r.stage_order, r.stage_kind)
            stage = stages.get(key)
            if stage is None:
                stage = stages[key] = Stage(r.stage, r.stage_order, StageKind(r.stage_kind))
        rows.append(
            OpportunityAsOf(
                r.opportunity_id,
                r.owner_id,
                stage,
                r.amount,
                ForecastCategory(r.forecast_category) if r.forecast_category else None,
                r.nbm_at,
                r.qualified_at,
                r.closed_at,
                r.is_renewal,
            )
        )
    return rows


async def renewals_as_of(session: AsyncSession, as_of: datetime) -> list[RenewalAsOf]:
    """The renewals due at ``as_of``, from the stage history of the opportunities they
    renew (and of their own CRM opportunities), not from their status now."""
    result = await session.execute(RENEWALS_AS_OF_QUERY, {"as_of": as_of})
    found = (
        renewal_as_of(
            RenewalHistory(
                renewal_id=r.renewal_id,
                owner_id=r.owner_id,
                amount=r.amount,
                close_date=r.close_date,
                cancelled_at=r.ended_at if r.status == RenewalStatus.CANCELLED.value else None,
                source_kind=StageKind(r.source_kind) if r.source_kind else None,
                source_since=r.source_since,
                own_kind=StageKind(r.own_kind) if r.own_kind else None,
            ),
            as_of,
        )
        for r in result
    )
    return [renewal for renewal in found if renewal is not None]


async def opportunity_groups_as_of(
    session: AsyncSession, periods: Periods
) -> list[OpportunityGroup]:
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    result = await session.execute(
        GROUPS_AS_OF_QUERY,
        {
            "as_of": periods.as_of,
            "period_start": periods.period_start,
            "quarter_start": periods.quarter_start,
        },
    )
    return [
        OpportunityGroup(
            owner_id=r.owner_id,
            stage=Stage(r.stage, r.stage_order, StageKind(r.stage_kind))
            if r.stage is not None and r.stage_kind is not None
            else None,
            forecast_category=ForecastCategory(r.forecast_category)
            if r.forecast_category
            else None,
            nbm_in_period=r.nbm_in_period,
            qualified_in_period=r.qualified_in_period,
            closed_in_quarter=r.closed_in_quarter,
            count=r.n,
            amount=r.amount,
        )
        for r in result
    ]


async def compute_forecast(
    session: AsyncSession, settings: RenewalsSettings, as_of: datetime, period_start: datetime
) -> tuple[Forecast, int]:
    periods = periods_for(
        as_of, period_start, settings.company_timezone, settings.fiscal_year_start_month
    )
    groups = await opportunity_groups_as_of(session, periods)
    renewals = await renewals_as_of(session, as_of)
    forecast = aggregate(groups, renewals, periods, settings.qualified_stage)
    return forecast, sum(g.count for g in groups)


def snapshot_id_for(scheduled_at: datetime) -> str:
    return str(uuid.uuid5(SNAPSHOT_NAMESPACE, scheduled_at.astimezone(UTC).isoformat()))


@dataclass(frozen=True)
class StoredSnapshot:
    id: str
    created: bool  # False: another instance (or an earlier run) had taken it


async def store_snapshot(
    session: AsyncSession,
    settings: RenewalsSettings,
    *,
    as_of: datetime,
    scheduled_at: datetime | None,
    taken_at: datetime,
) -> StoredSnapshot:
    """Take and store one snapshot; a scheduled one at most once (its unique key)."""
    started = time.perf_counter()
    period_start = settings.schedule().previous_scheduled_at(as_of - timedelta(microseconds=1))
    forecast, count = await compute_forecast(session, settings, as_of, period_start)
    snapshot_id = snapshot_id_for(scheduled_at) if scheduled_at else str(uuid.uuid4())
    contents = forecast_json(forecast)
    inserted = await session.execute(
        pg_insert(m.snapshots)
        .values(
            id=snapshot_id,
            scheduled_at=scheduled_at,
            as_of=as_of,
            taken_at=taken_at,
            seconds=Decimal(f"{time.perf_counter() - started:.3f}"),
            opportunities=count,
            contents=contents,
        )
        .on_conflict_do_nothing()
        .returning(m.snapshots.c.id)
    )
    created = inserted.scalar() is not None
    if created:
        await add_event(
            session,
            m.metadata.tables[f"{m.SCHEMA}.outbox"],
            make_event(
                SnapshotTakenEvent,
                id=derived_event_id("snapshot.taken", snapshot_id),
                source="renewals",
                occurred_at=as_of,
                payload=SnapshotTaken(
                    snapshot_id=snapshot_id,
                    scheduled_at=scheduled_at or as_of,
                    as_of=as_of,
                    open_pipeline=forecast.total.open.amount,
                    qualified_pipeline=forecast.total.qualified_pipeline.amount,
                ),
            ),
            settings.topic_prefix,
        )
    return StoredSnapshot(snapshot_id, created)


async def take_scheduled(
    runtime: ServiceRuntime, settings: RenewalsSettings, scheduled_at: datetime, now: datetime
) -> StoredSnapshot | None:
    async with runtime.database.transaction() as session:
        # Instances racing for the same week: the loser waits here, then finds it taken
        # (the unique key on scheduled_at is the guarantee; the lock saves the work).
        key = int(scheduled_at.timestamp())
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        exists = await session.execute(
            select(m.snapshots.c.id).where(m.snapshots.c.scheduled_at == scheduled_at)
        )
        if exists.scalar() is not None:
            return None
        stored = await store_snapshot(
            session, settings, as_of=scheduled_at, scheduled_at=scheduled_at, taken_at=now
        )
    runtime.relay.wake()
    log.info(
        "forecast snapshot taken",
        extra={"scheduled_at": scheduled_at.isoformat(), "snapshot_id": stored.id},
    )
    return stored


async def last_scheduled(runtime: ServiceRuntime) -> datetime | None:
    async with runtime.database.transaction() as session:
        found = await session.execute(select(func.max(m.snapshots.c.scheduled_at)))
        value: datetime | None = found.scalar()
        return value


async def first_recorded(runtime: ServiceRuntime) -> datetime | None:
    """When the earliest change in the stored history happened."""
    async with runtime.database.transaction() as session:
        found = await session.execute(select(func.min(m.opportunity_history.c.at)))
        value: datetime | None = found.scalar()
        return value


async def catch_up(
    runtime: ServiceRuntime, settings: RenewalsSettings, now: datetime
) -> list[datetime]:
    """Take every scheduled snapshot missed up to ``now``, each as of its own time.

    With no snapshot stored (the first start, or a rebuild from the topics), every
    scheduled time since the first recorded change is taken: a rebuild gives back the
    whole weekly history, not only the last weeks."""
    schedule = settings.schedule()
    last = await last_scheduled(runtime)
    rebuilding = last is None
    if last is None:
        weeks = settings.snapshot_first_catch_up_weeks
        if weeks == 0:
            return []
        first = await first_recorded(runtime)
        last = now - timedelta(weeks=weeks)
        if first is not None:
            last = min(last, first)
    missed = schedule.scheduled_times_between(last, now)
    if rebuilding and missed:
        log.info(
            "taking every weekly snapshot since the history begins", extra={"count": len(missed)}
        )
    elif len(missed) > settings.snapshot_catch_up_max:
        log.warning(
            "too many missed snapshots: taking the latest only",
            extra={"missed": len(missed), "max": settings.snapshot_catch_up_max},
        )
        missed = missed[len(missed) - settings.snapshot_catch_up_max :]
    taken = []
    for scheduled_at in missed:
        if await take_scheduled(runtime, settings, scheduled_at, now) is not None:
            taken.append(scheduled_at)
    return taken


class ForecastScheduler:
    """The background task: catch up at start, then sleep until each scheduled time.

    ``stop()`` ends it at once (the runtime gives background tasks no stop signal of its
    own; the app's shutdown hook calls this before the runtime waits for its tasks).
    """

    def __init__(self, settings: RenewalsSettings, clock: Clock, tick_s: float) -> None:
        self.settings = settings
        self.clock = clock
        self.tick_s = tick_s
        self._stopping = asyncio.Event()
        self.__name__ = "forecast_scheduler"

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def __call__(self, runtime: ServiceRuntime) -> None:
        settings, clock = self.settings, self.clock
        schedule = settings.schedule()
        await wait_until_caught_up(runtime, settings, self._stopping)
        if not self._stopping.is_set():
            await catch_up(runtime, settings, clock())
        while not self._stopping.is_set():
            now = clock()
            due = schedule.next_scheduled_at(now)
            # Short sleeps: a suspended machine or a moved clock is noticed within a tick.
            await self._sleep(min(self.tick_s, max((due - now).total_seconds(), 0.01)))
            if not self._stopping.is_set() and clock() >= due:
                await catch_up(runtime, settings, clock())


async def wait_until_caught_up(
    runtime: ServiceRuntime, settings: RenewalsSettings, stopping: asyncio.Event
) -> None:
    """Before catching up missed weeks, let the consumer apply what was published while
    the service was down: a snapshot as of last Friday needs last Friday's events."""
    if not settings.consumer_enabled:
        return
    deadline = time.monotonic() + settings.snapshot_catch_up_wait_s
    names = [t.name(settings.topic_prefix) for t in runtime.spec.topics]
    group = f"{settings.topic_prefix}{settings.service_name}"
    targets: dict[tuple[str, int], int] | None = None
    while time.monotonic() < deadline and not stopping.is_set():
        try:
            lags = await admin.group_lag(settings.kafka_bootstrap_servers, group, names)
        except Exception as exc:  # Kafka away: the deadline still applies
            log.warning("cannot read consumer lag", extra={"error": str(exc)})
            await asyncio.sleep(1)
            continue
        if targets is None:  # what had been published when we started
            targets = {(p.topic, p.partition): p.end for p in lags}
        if all((p.committed or 0) >= targets.get((p.topic, p.partition), 0) for p in lags):
            return
        await asyncio.sleep(0.5)
    log.warning("consumer still behind; taking missed snapshots from what is applied")
