"""Renewals' lists for dashboards: opportunities as they stand, and accounts with their
tier, each a page of the read contract's envelope with filters that have an index."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row, Select, select

from revops.events.contract import Money, Page, read_page
from revops.events.service import NEEDS_A_TOKEN, Limit, Offset, ReadAccess, SessionDep, StoredText
from revops.renewals import models as m
from revops.renewals.domain.stages import ForecastCategory, StageKind
from revops.renewals.domain.tiers import Tier

router = APIRouter(responses=NEEDS_A_TOKEN)


class OpportunityLine(BaseModel):
    """An opportunity as it stands: a line of the list, and the first fields of its
    detail (``/opportunities/{id}``), which adds its stage history and milestones."""

    id: str = Field(description="the CRM's opportunity id")
    name: str | None = Field(description="the opportunity's name in the CRM")
    account_id: str | None = Field(description="the CRM account it belongs to")
    owner_id: str | None = Field(description="the CRM user who owns it")
    stage: str | None = Field(description="its stage now, as the CRM names it")
    status: StageKind | None = Field(description="what the stage means: open, won or lost")
    amount: Money | None = Field(description="its amount now, in the CRM's currency")
    forecast_category: ForecastCategory | None = Field(
        description="the forecast category of its stage now"
    )
    close_date: date | None = Field(description="its expected or actual close date")
    pipeline: str | None = Field(description="new business or renewal pipeline, as stored")
    opportunity_type: str | None = Field(description="the CRM's opportunity type")
    is_renewal: bool = Field(description="a renewal this service created on a Closed Won")
    created_at: datetime | None = Field(description="when it was created in the CRM")
    closed_at: datetime | None = Field(description="when it was won or lost; null: open")


class OpportunityPage(Page[OpportunityLine]):
    """A page of opportunities, by close date (those without one last)."""


def line_fields(row: Row[Any]) -> dict[str, Any]:
    """An ``opportunities`` row as the fields of its line."""
    return {
        "id": row.opportunity_id,
        "name": row.name,
        "account_id": row.account_id,
        "owner_id": row.owner_id,
        "stage": row.stage,
        "status": row.stage_kind,
        "amount": row.amount,
        "forecast_category": row.forecast_category,
        "close_date": row.close_date,
        "pipeline": row.pipeline,
        "opportunity_type": row.opportunity_type,
        "is_renewal": row.is_renewal,
        "created_at": row.created_at,
        "closed_at": row.closed_at,
    }


class OpportunityFilters(BaseModel):
    """The opportunity list's filters; each one given narrows the list."""

    status: StageKind | None = Field(default=None, description="only the open, won or lost")
    forecast_category: ForecastCategory | None = Field(
        default=None, description="only those in this forecast category"
    )
    owner_id: StoredText | None = Field(default=None, description="only this owner's")
    account_id: StoredText | None = Field(default=None, description="only this account's")
    close_from: date | None = Field(default=None, description="closing on or after this day")
    close_before: date | None = Field(default=None, description="closing before this day")
    limit: Limit = 100
    offset: Offset = 0


@router.get("/opportunities", dependencies=[ReadAccess], tags=["pipeline"])
async def list_opportunities(
    session: SessionDep, filters: Annotated[OpportunityFilters, Query()]
) -> OpportunityPage:
    """Opportunities as they stand now, by close date; each one's history is at
    ``/opportunities/{id}``."""
    f = filters
    rows, total = await read_page(
        session, opportunities_query(f), OPPORTUNITY_ORDER, f.limit, f.offset
    )
    items = [OpportunityLine(**line_fields(r)) for r in rows]
    return OpportunityPage(items=items, total=total, limit=f.limit, offset=f.offset)


OPPORTUNITY_ORDER = [
    m.opportunities.c.close_date.asc().nulls_last(),
    m.opportunities.c.opportunity_id,
]


def opportunities_query(f: OpportunityFilters) -> Select[Any]:
    """The opportunities the filters ask for (models.py: the indexes that serve them)."""
    o = m.opportunities.c
    query = select(m.opportunities)
    for column, wanted in (
        (o.stage_kind, f.status),
        (o.forecast_category, f.forecast_category),
        (o.owner_id, f.owner_id),
        (o.account_id, f.account_id),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    if f.close_from is not None:
        query = query.where(o.close_date >= f.close_from)
    if f.close_before is not None:
        query = query.where(o.close_date < f.close_before)
    return query


class AccountLine(BaseModel):
    id: str = Field(description="the CRM's account id")
    tier: Tier | None = Field(description="its tier now; null: nothing about its size known")
    tier_since: datetime | None = Field(description="since when it has had that tier")
    users: int | None = Field(description="the number of users it pays for, as last received")
    plan: str | None = Field(description="its plan, as last received")
    iacv: Money | None = Field(description="its incremental annual contract value")
    updated_at: datetime = Field(description="when the last change of its size was received")


class AccountPage(Page[AccountLine]):
    """A page of accounts, by id."""


AccountTier = Literal["diamond", "pearl", "sapphire", "ruby", "quartz", "none"]


def accounts_query(tier: AccountTier | None) -> Select[Any]:
    a = m.accounts.c
    query = select(m.accounts)
    if tier == "none":
        return query.where(a.tier.is_(None))
    return query if tier is None else query.where(a.tier == tier)


@router.get("/accounts", dependencies=[ReadAccess], tags=["accounts"])
async def list_accounts(
    session: SessionDep,
    tier: Annotated[
        AccountTier | None, Query(description="only this tier's accounts; none: no tier yet")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AccountPage:
    """The accounts whose size this service has received, with their tier now; each
    one's tier history is at ``/accounts/{id}/tier``."""
    query = accounts_query(tier)
    rows, total = await read_page(session, query, [m.accounts.c.account_id], limit, offset)
    items = [
        AccountLine(
            id=r.account_id,
            tier=r.tier,
            tier_since=r.tier_since,
            users=r.users,
            plan=r.plan,
            iacv=r.iacv,
            updated_at=r.last_at,
        )
        for r in rows
    ]
    return AccountPage(items=items, total=total, limit=limit, offset=offset)
