"""Renewals' HTTP API: opportunities with their history, renewals, pipeline figures as of
any time, forecast snapshots, account tiers and onboardings. Bearer tokens: reads need
the read token (or the admin one), taking a snapshot the admin token."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from revops.events.contract import Money, Page, read_page
from revops.events.service import (
    NEEDS_A_TOKEN,
    Limit,
    Offset,
    ReadAccess,
    RuntimeDep,
    SessionDep,
    StoredText,
    invalid,
    not_found,
)
from revops.renewals import models as m
from revops.renewals.lists_api import OpportunityLine, line_fields
from revops.renewals.settings import RenewalsSettings

router = APIRouter(responses=NEEDS_A_TOKEN)


def renewals_settings(runtime: Any) -> RenewalsSettings:
    settings = runtime.settings
    assert isinstance(settings, RenewalsSettings)
    return settings


def aware(value: datetime | None, name: str, location: str = "query") -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid(location, name, "needs a time zone (e.g. 2026-03-14T01:00:00Z)")
    return value.astimezone(UTC) if value is not None else None


def _local_date(moment: datetime | None, zone: str) -> date | None:
    return moment.astimezone(ZoneInfo(zone)).date() if moment is not None else None


# --- opportunities ----------------------------------------------------------------------


class StageChangeOut(BaseModel):
    stage: str | None = Field(description="the stage it moved into, as the CRM names it")
    at: datetime = Field(description="when it moved (the change's time in the CRM)")


class OpportunityOut(OpportunityLine):
    """An opportunity as it stands (its list line's fields), its stage history and its
    milestones."""

    stage_order: int | None = Field(description="the stage's place in the sales process")
    history: list[StageChangeOut] = Field(description="each stage it entered, in order")
    nbm_at: datetime | None = Field(
        description="its New Business Meeting: when it was created at or first reached stage 1"
    )
    nbm_date: date | None = Field(description="that day, in the company's time zone")
    qualified_at: datetime | None = Field(description="when it first reached stage 2")
    qualified_date: date | None = Field(description="that day, in the company's time zone")
    cycle_time_days: float | None = Field(
        description="days from qualified to closed; null: not both"
    )


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
    zone = renewals_settings(runtime).company_timezone
    cycle = None
    if row.closed_at is not None and row.qualified_at is not None:
        cycle = max((row.closed_at - row.qualified_at).total_seconds(), 0) / 86400
    return OpportunityOut(
        **line_fields(row),
        stage_order=row.stage_order,
        history=history,
        nbm_at=row.nbm_at,
        nbm_date=_local_date(row.nbm_at, zone),
        qualified_at=row.qualified_at,
        qualified_date=_local_date(row.qualified_at, zone),
        cycle_time_days=cycle,
    )


# --- renewals ---------------------------------------------------------------------------


class RenewalOut(BaseModel):
    id: str = Field(description="the renewal's id, derived from the won opportunity's")
    source_opportunity_id: str = Field(description="the Closed Won opportunity it renews")
    account_id: str | None = Field(description="the account renewing")
    owner_id: str | None = Field(description="who owns the renewal")
    amount: Money | None = Field(description="the amount to renew, in the CRM's currency")
    close_date: date = Field(description="when the renewal is due to close")
    status: str = Field(description="open, cancelled, won or lost")
    name: str = Field(description="the renewal opportunity's name")
    pipeline: str = Field(description="the pipeline it is in (the renewal pipeline)")
    created_at: datetime = Field(description="when the win that made it happened")
    ended_at: datetime | None = Field(description="when it was cancelled, won or lost")
    crm_opportunity_id: str | None = Field(
        description="its own opportunity id in the CRM once created there; null: not yet"
    )


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


RenewalStatus = Literal["open", "cancelled", "won", "lost", "all"]


class RenewalPage(Page[RenewalOut]):
    """A page of renewals, by close date."""


def renewals_query(due_before: date | None, owner_id: str | None, status: str) -> Select[Any]:
    r = m.renewals
    query: Select[Any] = select(r)
    if due_before is not None:
        query = query.where(r.c.close_date < due_before)
    if owner_id is not None:
        query = query.where(r.c.owner_id == owner_id)
    if status != "all":
        query = query.where(r.c.status == status)
    return query


@router.get("/renewals", dependencies=[ReadAccess], tags=["renewals"])
async def list_renewals(
    session: SessionDep,
    due_before: date | None = None,
    owner_id: StoredText | None = None,
    status: Annotated[
        RenewalStatus, Query(description="the renewals of this status, or all of them")
    ] = "open",
    limit: Limit = 100,
    offset: Offset = 0,
) -> RenewalPage:
    """Renewals by close date, open ones by default; ``due_before`` is exclusive."""
    r = m.renewals
    query = renewals_query(due_before, owner_id, status)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar()
    rows = await session.execute(
        query.order_by(r.c.close_date, r.c.renewal_id).limit(limit).offset(offset)
    )
    return RenewalPage(
        items=[_renewal(x) for x in rows], total=int(total or 0), limit=limit, offset=offset
    )


# --- accounts ---------------------------------------------------------------------------


class TierMoveOut(BaseModel):
    at: datetime = Field(description="when the account changed tier")
    tier_from: str | None = Field(description="the tier before; null: none yet")
    tier_to: str = Field(description="the tier after")


class TierOut(BaseModel):
    account_id: str = Field(description="the CRM's account id")
    tier: str | None = Field(description="its tier now; null: nothing about its size known")
    tier_since: datetime | None = Field(description="since when it has had that tier")
    users: int | None = Field(description="the number of users it pays for, as last received")
    plan: str | None = Field(description="its plan, as last received")
    iacv: Money | None = Field(description="its incremental annual contract value")
    history: list[TierMoveOut] = Field(description="every tier change, the oldest first")


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
    id: str = Field(description="the onboarding's id, derived from the account and the move")
    account_id: str = Field(description="the account to onboard")
    opened_at: datetime = Field(description="when the tier move that opened it happened")
    tier_from: str | None = Field(description="the tier before the move; null: none yet")
    tier_to: str = Field(description="the tier it moved into")
    status: str = Field(description="where the onboarding stands (Not started at first)")


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
