"""Renewals' forecast reads: the pipeline as of any moment, a period's figures, and the
weekly forecast snapshots (taking one needs the admin token). Every figure is typed: times
in UTC with ``Z``, amounts as strings with two decimals (docs/API.md), snapshots stored
before either rule included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from revops.events.contract import Money
from revops.events.service import (
    BAD_JSON_BODY,
    NEEDS_A_TOKEN,
    NEEDS_THE_ADMIN_TOKEN,
    Limit,
    Moment,
    Offset,
    ReadAccess,
    RuntimeDep,
    SessionDep,
    StoredText,
    WriteAccess,
    invalid,
    not_found,
)
from revops.renewals import models as m
from revops.renewals.api import aware, renewals_settings
from revops.renewals.domain.snapshot import forecast_json, period_metrics
from revops.renewals.forecast import compute_forecast, opportunities_as_of, store_snapshot

router = APIRouter(responses=NEEDS_A_TOKEN)


# --- the forecast's figures -------------------------------------------------------------


class BucketOut(BaseModel):
    count: int = Field(description="how many opportunities (or renewals)")
    amount: Money = Field(description="their amounts summed (none counts as 0)")


class FiguresOut(BaseModel):
    """The forecast of one owner, or of the whole company."""

    open_by_category: dict[str, BucketOut] = Field(
        description="open pipeline by forecast category (Pipeline, Best Case, Commit, ...)"
    )
    open_by_stage: dict[str, BucketOut] = Field(description="open pipeline by stage")
    open: BucketOut = Field(description="all open pipeline")
    qualified_pipeline: BucketOut = Field(
        description="open pipeline at the qualified stage or beyond"
    )
    nbms: int = Field(description="New Business Meetings in the period (the week before)")
    qualified: int = Field(description="opportunities qualified in the period")
    won_this_quarter: BucketOut = Field(description="won from the quarter's start to as_of")
    lost_this_quarter: BucketOut = Field(description="lost from the quarter's start to as_of")
    renewals_due_next_quarter: BucketOut = Field(
        description="renewals still due whose close date is in the next fiscal quarter"
    )


class QuarterOut(BaseModel):
    start: date = Field(description="the fiscal quarter's first day")
    end: date = Field(description="its last day (inclusive)")


class ForecastOut(BaseModel):
    as_of: datetime = Field(description="the moment the figures are as of")
    period_start: datetime = Field(description="NBMs and qualified count in (period_start, as_of]")
    quarter_start: datetime = Field(description="won and lost count from this moment")
    next_quarter: QuarterOut = Field(description="the quarter whose renewals are due")
    total: FiguresOut = Field(description="the whole company's figures")
    by_owner: dict[str, FiguresOut] = Field(
        description='each owner\'s figures, by rep id ("": no owner)'
    )


class PipelineOut(ForecastOut):
    opportunities: int = Field(description="opportunities read to compute the figures")


@router.get("/pipeline", dependencies=[ReadAccess], tags=["pipeline"])
async def get_pipeline(
    session: SessionDep,
    runtime: RuntimeDep,
    as_of: Annotated[
        Moment | None, Query(description="ISO 8601 with a zone; now if absent")
    ] = None,
) -> PipelineOut:
    """Open pipeline by stage and forecast category, qualified pipeline, NBMs and qualified
    of the week before, per owner and in total, as of any moment, from the history."""
    settings = renewals_settings(runtime)
    moment = aware(as_of, "as_of") or datetime.now(UTC)
    forecast, count = await compute_forecast(session, settings, moment, moment - timedelta(days=7))
    return PipelineOut.model_validate({"opportunities": count, **forecast_json(forecast)})


class MetricsOut(BaseModel):
    from_: datetime = Field(serialization_alias="from", description="the period's start")
    to: datetime = Field(description="the period's end (excluded)")
    nbms: int = Field(description="New Business Meetings in the period")
    qualified: int = Field(description="opportunities qualified in the period")
    won: BucketOut = Field(description="opportunities won in the period")
    lost: BucketOut = Field(description="opportunities lost in the period")
    cycle_time_days_mean: float | None = Field(
        description="mean days from qualified to won of the deals won; null: none"
    )
    cycle_time_days_median: float | None = Field(
        description="median days from qualified to won; null: none"
    )
    won_with_cycle_time: int = Field(description="won deals whose cycle time is known")


@router.get(
    "/pipeline/metrics", dependencies=[ReadAccess], tags=["pipeline"], response_model_by_alias=True
)
async def get_pipeline_metrics(
    session: SessionDep,
    from_: Annotated[Moment, Query(alias="from")],
    to: Moment,
) -> MetricsOut:
    """NBMs, qualified opportunities, won and lost (count and amount) and cycle times
    (qualified to won) in [from, to), from the history as of ``to``."""
    start, end = aware(from_, "from"), aware(to, "to")
    assert start is not None and end is not None
    if end <= start:
        raise invalid("query", "to", "to must be after from")
    rows = await opportunities_as_of(session, end - timedelta(microseconds=1))
    metrics = period_metrics(rows, start, end)
    return MetricsOut(
        from_=start,
        to=end,
        nbms=metrics.nbms,
        qualified=metrics.qualified,
        won=BucketOut(count=metrics.won.count, amount=metrics.won.amount),
        lost=BucketOut(count=metrics.lost.count, amount=metrics.lost.amount),
        cycle_time_days_mean=metrics.mean_cycle_days,
        cycle_time_days_median=metrics.median_cycle_days,
        won_with_cycle_time=len(metrics.cycle_days),
    )


# --- forecast snapshots -----------------------------------------------------------------


class SnapshotSummary(BaseModel):
    id: str = Field(description="the snapshot's id (a scheduled one's is derived from its time)")
    scheduled_at: datetime | None = Field(
        description="the weekly time it was taken for; null: taken on demand"
    )
    as_of: datetime = Field(description="the moment its figures are as of")
    taken_at: datetime = Field(description="when it was taken")
    seconds: float = Field(description="how long taking it took")
    opportunities: int = Field(description="opportunities read to take it")
    open_by_category: dict[str, BucketOut] = Field(
        description="the open pipeline's totals by forecast category as the snapshot took "
        "them (a trend needs no request per snapshot)"
    )


class SnapshotOut(SnapshotSummary):
    contents: ForecastOut = Field(description="the forecast as of the snapshot's moment")


class SnapshotList(BaseModel):
    items: list[SnapshotSummary] = Field(description="this page's snapshots, newest first")
    total: int = Field(description="snapshots in the range asked for, every page together")
    next_scheduled_at: datetime = Field(description="when the next weekly one is due")
    limit: int = Field(description="the most items a page holds, as asked (1 to 500)")
    offset: int = Field(description="how many items come before this page, as asked")


# The list reads only this part of each snapshot's contents.
_BY_CATEGORY = m.snapshots.c.contents["total"]["open_by_category"].label("by_category")


def _summary(row: Any) -> dict[str, Any]:
    found = getattr(row, "by_category", None)
    if found is None and getattr(row, "contents", None) is not None:
        found = (row.contents.get("total") or {}).get("open_by_category")
    return {
        "id": row.id,
        "scheduled_at": row.scheduled_at,
        "as_of": row.as_of,
        "taken_at": row.taken_at,
        "seconds": float(row.seconds),
        "opportunities": row.opportunities,
        "open_by_category": found or {},
    }


@router.get("/forecast/snapshots", dependencies=[ReadAccess], tags=["forecast"])
async def list_snapshots(
    session: SessionDep,
    runtime: RuntimeDep,
    from_: Annotated[Moment | None, Query(alias="from")] = None,
    to: Moment | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> SnapshotList:
    """Snapshots by the moment they are as of (newest first), each with its totals by
    forecast category, and when the next is due."""
    s = m.snapshots
    query = select(
        s.c.id,
        s.c.scheduled_at,
        s.c.as_of,
        s.c.taken_at,
        s.c.seconds,
        s.c.opportunities,
        _BY_CATEGORY,
    )
    start, end = aware(from_, "from"), aware(to, "to")
    in_range = []
    if start is not None:
        in_range.append(s.c.as_of >= start)
    if end is not None:
        in_range.append(s.c.as_of < end)
    query = query.where(*in_range)
    rows = await session.execute(query.order_by(s.c.as_of.desc()).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(s).where(*in_range))
    schedule = renewals_settings(runtime).schedule()
    return SnapshotList(
        items=[SnapshotSummary.model_validate(_summary(r)) for r in rows],
        total=int(total or 0),
        next_scheduled_at=schedule.next_scheduled_at(datetime.now(UTC)),
        limit=limit,
        offset=offset,
    )


def _snapshot(row: Any) -> SnapshotOut:
    return SnapshotOut.model_validate({**_summary(row), "contents": row.contents})


@router.get(
    "/forecast/snapshots/{snapshot_id}",
    dependencies=[ReadAccess],
    tags=["forecast"],
    responses=not_found("snapshot"),
)
async def get_snapshot(snapshot_id: StoredText, session: SessionDep) -> SnapshotOut:
    s = m.snapshots
    row = (await session.execute(select(s).where(s.c.id == snapshot_id))).first()
    if row is None:
        raise HTTPException(404, f"no snapshot {snapshot_id!r}")
    return _snapshot(row)


class SnapshotRequest(BaseModel):
    as_of: Moment | None = Field(default=None, description="ISO 8601 with a zone; now if absent")


@router.post(
    "/forecast/snapshots",
    dependencies=[WriteAccess],
    status_code=201,
    tags=["forecast"],
    responses={**NEEDS_THE_ADMIN_TOKEN, **BAD_JSON_BODY},
)
async def take_snapshot_now(
    session: SessionDep, runtime: RuntimeDep, request: SnapshotRequest | None = None
) -> SnapshotOut:
    """Take a snapshot now, as of now or of a given moment (not a scheduled one)."""
    now = datetime.now(UTC)
    as_of = aware(request.as_of if request else None, "as_of", "body") or now
    stored = await store_snapshot(
        session, renewals_settings(runtime), as_of=as_of, scheduled_at=None, taken_at=now
    )
    await session.flush()
    row = (await session.execute(select(m.snapshots).where(m.snapshots.c.id == stored.id))).one()
    return _snapshot(row)
