"""Renewals' HTTP API: opportunities with their history, renewals, pipeline figures as of
any time, forecast snapshots, account tiers and onboardings. Bearer tokens: reads need
the read token (or the admin one), taking a snapshot the admin token."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from revops.events.contract import Page, read_page
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
from revops.renewals.domain.snapshot import forecast_json, period_metrics
from revops.renewals.forecast import compute_forecast, opportunities_as_of, store_snapshot
from revops.renewals.settings import RenewalsSettings

router = APIRouter(responses=NEEDS_A_TOKEN)


def _settings(runtime: Any) -> RenewalsSettings:
    settings = runtime.settings
    assert isinstance(settings, RenewalsSettings)
    return settings


def _aware(value: datetime | None, name: str, location: str = "query") -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid(location, name, "needs a time zone (e.g. 2026-03-14T01:00:00Z)")
    return value.astimezone(UTC) if value is not None else None


def _local_date(moment: datetime | None, zone: str) -> date | None:
    return moment.astimezone(ZoneInfo(zone)).date() if moment is not None else None


# --- opportunities ----------------------------------------------------------------------


class StageChangeOut(BaseModel):
    stage: str | None
    at: datetime


class OpportunityOut(BaseModel):
    id: str
    account_id: str | None
    owner_id: str | None
    name: str | None
    stage: str | None
    stage_order: int | None
    status: str | None  # open / won / lost
    amount: Decimal | None
    forecast_category: str | None
    close_date: date | None
    pipeline: str | None
    opportunity_type: str | None
    history: list[StageChangeOut]
    nbm_at: datetime | None
    nbm_date: date | None  # in the company's time zone
    qualified_at: datetime | None
    qualified_date: date | None
    closed_at: datetime | None
    cycle_time_days: float | None  # qualified -> closed


@router.get(
    "/opportunities/{opportunity_id}",
    dependencies=[ReadAccess],
    tags=["pipeline"],
    responses=not_found("opportunity"),
)
async def get_opportunity(
    opportunity_id: StoredText, session: SessionDep, runtime: RuntimeDep
) -> OpportunityOut:
    """An opportunity as it stands, its stage history and its milestones."""
    o = m.opportunities
    row = (await session.execute(select(o).where(o.c.opportunity_id == opportunity_id))).first()
    if row is None:
        raise HTTPException(404, f"no opportunity {opportunity_id!r}")
    h = m.opportunity_history
    versions = await session.execute(
        select(h.c.stage, h.c.at)
        .where(h.c.opportunity_id == opportunity_id)
        .order_by(h.c.at, h.c.event_id)
    )
    history: list[StageChangeOut] = []
    for stage, at in versions:
        if stage is not None and (not history or history[-1].stage != stage):
            history.append(StageChangeOut(stage=stage, at=at))
    zone = _settings(runtime).company_timezone
    cycle = None
    if row.closed_at is not None and row.qualified_at is not None:
        cycle = max((row.closed_at - row.qualified_at).total_seconds(), 0) / 86400
    return OpportunityOut(
        id=row.opportunity_id,
        account_id=row.account_id,
        owner_id=row.owner_id,
        name=row.name,
        stage=row.stage,
        stage_order=row.stage_order,
        status=row.stage_kind,
        amount=row.amount,
        forecast_category=row.forecast_category,
        close_date=row.close_date,
        pipeline=row.pipeline,
        opportunity_type=row.opportunity_type,
        history=history,
        nbm_at=row.nbm_at,
        nbm_date=_local_date(row.nbm_at, zone),
        qualified_at=row.qualified_at,
        qualified_date=_local_date(row.qualified_at, zone),
        closed_at=row.closed_at,
        cycle_time_days=cycle,
    )


# --- renewals ---------------------------------------------------------------------------


class RenewalOut(BaseModel):
    id: str
    source_opportunity_id: str
    account_id: str | None
    owner_id: str | None
    amount: Decimal | None
    close_date: date
    status: str
    name: str
    pipeline: str
    created_at: datetime
    ended_at: datetime | None
    crm_opportunity_id: str | None


def _renewal(row: Any) -> RenewalOut:
    return RenewalOut(
        id=row.renewal_id,
        source_opportunity_id=row.source_opportunity_id,
        account_id=row.account_id,
        owner_id=row.owner_id,
        amount=row.amount,
        close_date=row.close_date,
        status=row.status,
        name=row.name,
        pipeline=row.pipeline,
        created_at=row.created_at,
        ended_at=row.ended_at,
        crm_opportunity_id=row.crm_opportunity_id,
    )


@router.get(
    "/opportunities/{opportunity_id}/renewal",
    dependencies=[ReadAccess],
    tags=["renewals"],
    responses=not_found("renewal of this opportunity"),
)
async def get_renewal_of(opportunity_id: StoredText, session: SessionDep) -> RenewalOut:
    """The renewal a won opportunity made (whatever its status now)."""
    r = m.renewals
    row = (
        await session.execute(select(r).where(r.c.source_opportunity_id == opportunity_id))
    ).first()
    if row is None:
        raise HTTPException(404, f"opportunity {opportunity_id!r} has no renewal")
    return _renewal(row)


class RenewalPage(BaseModel):
    items: list[RenewalOut]
    total: int
    limit: int
    offset: int


@router.get("/renewals", dependencies=[ReadAccess], tags=["renewals"])
async def list_renewals(
    session: SessionDep,
    due_before: date | None = None,
    owner_id: StoredText | None = None,
    status: Annotated[
        StoredText | None, Query(description="open, cancelled, won, lost, or all")
    ] = "open",
    limit: Limit = 100,
    offset: Offset = 0,
) -> RenewalPage:
    """Renewals by close date, open ones by default; ``due_before`` is exclusive."""
    r = m.renewals
    query: Select[Any] = select(r)
    if due_before is not None:
        query = query.where(r.c.close_date < due_before)
    if owner_id is not None:
        query = query.where(r.c.owner_id == owner_id)
    if status and status != "all":
        query = query.where(r.c.status == status)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar()
    rows = await session.execute(
        query.order_by(r.c.close_date, r.c.renewal_id).limit(limit).offset(offset)
    )
    return RenewalPage(
        items=[_renewal(x) for x in rows], total=int(total or 0), limit=limit, offset=offset
    )


# --- pipeline ---------------------------------------------------------------------------


@router.get("/pipeline", dependencies=[ReadAccess], tags=["pipeline"])
async def get_pipeline(
    session: SessionDep,
    runtime: RuntimeDep,
    as_of: Annotated[
        Moment | None, Query(description="ISO 8601 with a zone; now if absent")
    ] = None,
) -> dict[str, Any]:
    """Open pipeline by stage and forecast category, qualified pipeline, NBMs and qualified
    of the week before, per owner and in total, as of any moment, from the history."""
    settings = _settings(runtime)
    moment = _aware(as_of, "as_of") or datetime.now(UTC)
    forecast, count = await compute_forecast(session, settings, moment, moment - timedelta(days=7))
    return {"opportunities": count, **forecast_json(forecast)}


class BucketOut(BaseModel):
    count: int
    amount: Decimal


class MetricsOut(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    nbms: int
    qualified: int
    won: BucketOut
    lost: BucketOut
    cycle_time_days_mean: float | None
    cycle_time_days_median: float | None
    won_with_cycle_time: int


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
    start, end = _aware(from_, "from"), _aware(to, "to")
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


class CategoryTotal(BaseModel):
    count: int = Field(description="open opportunities in the forecast category")
    amount: str = Field(description="their amount, a decimal string with two decimals")


class SnapshotSummary(BaseModel):
    id: str
    scheduled_at: datetime | None
    as_of: datetime
    taken_at: datetime
    seconds: float
    opportunities: int
    open_by_category: dict[str, CategoryTotal] = Field(
        description="the open pipeline's totals by forecast category as the snapshot took "
        "them (a trend needs no request per snapshot)"
    )


class SnapshotOut(SnapshotSummary):
    contents: dict[str, Any]


class SnapshotList(BaseModel):
    items: list[SnapshotSummary]
    total: int = Field(description="snapshots in the range asked for, every page together")
    next_scheduled_at: datetime
    limit: int
    offset: int


# The list reads only this part of each snapshot's contents.
_BY_CATEGORY = m.snapshots.c.contents["total"]["open_by_category"].label("by_category")
_CENTS = Decimal("0.01")


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
        "open_by_category": {
            category: CategoryTotal(
                count=int(bucket["count"]),
                amount=str(Decimal(str(bucket["amount"])).quantize(_CENTS)),
            )
            for category, bucket in (found or {}).items()
        },
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
    start, end = _aware(from_, "from"), _aware(to, "to")
    in_range = []
    if start is not None:
        in_range.append(s.c.as_of >= start)
    if end is not None:
        in_range.append(s.c.as_of < end)
    query = query.where(*in_range)
    rows = await session.execute(query.order_by(s.c.as_of.desc()).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(s).where(*in_range))
    schedule = _settings(runtime).schedule()
    return SnapshotList(
        items=[SnapshotSummary(**_summary(r)) for r in rows],
        total=int(total or 0),
        next_scheduled_at=schedule.next_scheduled_at(datetime.now(UTC)),
        limit=limit,
        offset=offset,
    )


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
    return SnapshotOut(**_summary(row), contents=row.contents)


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
    as_of = _aware(request.as_of if request else None, "as_of", "body") or now
    stored = await store_snapshot(
        session, _settings(runtime), as_of=as_of, scheduled_at=None, taken_at=now
    )
    await session.flush()
    row = (await session.execute(select(m.snapshots).where(m.snapshots.c.id == stored.id))).one()
    return SnapshotOut(**_summary(row), contents=row.contents)


# --- accounts ---------------------------------------------------------------------------


class TierMoveOut(BaseModel):
    at: datetime
    tier_from: str | None
    tier_to: str


class TierOut(BaseModel):
    account_id: str
    tier: str | None
    tier_since: datetime | None
    users: int | None
    plan: str | None
    iacv: Decimal | None
    history: list[TierMoveOut]


@router.get(
    "/accounts/{account_id}/tier",
    dependencies=[ReadAccess],
    tags=["accounts"],
    responses=not_found("account"),
)
async def get_tier(account_id: StoredText, session: SessionDep) -> TierOut:
    a = m.accounts
    row = (await session.execute(select(a).where(a.c.account_id == account_id))).first()
    if row is None:
        raise HTTPException(404, f"no account {account_id!r} (no size was ever received)")
    t = m.tier_history
    moves = await session.execute(
        select(t.c.at, t.c.tier_from, t.c.tier_to)
        .where(t.c.account_id == account_id)
        .order_by(t.c.at)
    )
    return TierOut(
        account_id=account_id,
        tier=row.tier,
        tier_since=row.tier_since,
        users=row.users,
        plan=row.plan,
        iacv=row.iacv,
        history=[TierMoveOut(at=x.at, tier_from=x.tier_from, tier_to=x.tier_to) for x in moves],
    )


class OnboardingOut(BaseModel):
    id: str
    account_id: str
    opened_at: datetime
    tier_from: str | None
    tier_to: str
    status: str


class OnboardingPage(Page[OnboardingOut]):
    """A page of onboardings, the newest first."""


@router.get("/onboardings", dependencies=[ReadAccess], tags=["accounts"])
async def list_onboardings(
    session: SessionDep,
    account_id: StoredText | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> OnboardingPage:
    """Onboarding records opened by tier moves, newest first."""
    o = m.onboardings
    query = select(o)
    if account_id is not None:
        query = query.where(o.c.account_id == account_id)
    rows, total = await read_page(session, query, [o.c.opened_at.desc(), o.c.id], limit, offset)
    items = [
        OnboardingOut(
            id=r.id,
            account_id=r.account_id,
            opened_at=r.opened_at,
            tier_from=r.tier_from,
            tier_to=r.tier_to,
            status=r.status,
        )
        for r in rows
    ]
    return OnboardingPage(items=items, total=total, limit=limit, offset=offset)
