"""Attribution's campaign list for dashboards: each campaign people responded to, with its
members, touches and the opportunities it influenced, a page of the read contract's
envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select

from revops.attribution import models
from revops.events.contract import MomentOrDay, Page, read_page, start_of
from revops.events.service import NEEDS_A_TOKEN, Limit, Offset, ReadAccess, RuntimeDep, SessionDep

router = APIRouter(tags=["attribution"], responses=NEEDS_A_TOKEN)


class CampaignOut(BaseModel):
    campaign_id: str = Field(description="the CRM's campaign id")
    members: int = Field(description="people with a form response in it")
    touches: int = Field(description="form responses in it, every person's")
    first_touch_at: datetime = Field(description="its earliest response")
    last_touch_at: datetime = Field(description="its latest response")
    opportunities: int = Field(
        description="opportunities it influenced (credit under any model: "
        "/reports/pipeline-by-source has the credit)"
    )


class CampaignPage(Page[CampaignOut]):
    """A page of campaigns, by id."""


def campaigns_query(active_since: datetime | None) -> Select[Any]:
    """Each campaign's responses summed, grouped from the touches' campaign index."""
    t = models.touches.c
    responses = (
        select(
            t.campaign_id,
            func.count(func.distinct(t.person_id)).label("members"),
            func.count().label("touches"),
            func.min(t.occurred_at).label("first_touch_at"),
            func.max(t.occurred_at).label("last_touch_at"),
        )
        .where(t.campaign_id.is_not(None))
        .group_by(t.campaign_id)
    )
    if active_since is not None:
        responses = responses.having(func.max(t.occurred_at) >= active_since)
    return responses


@router.get("/campaigns", dependencies=[ReadAccess])
async def list_campaigns(
    session: SessionDep,
    runtime: RuntimeDep,
    active_since: Annotated[
        MomentOrDay | None,
        Query(description="only campaigns with a response then or later (a day: its start)"),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> CampaignPage:
    """The campaigns people responded to (forms with a campaign), by id, with their
    members, responses and the opportunities they influenced."""
    since = None
    if active_since is not None:
        since = start_of(active_since, runtime.settings.company_timezone)
    responses = campaigns_query(since)
    order = [models.touches.c.campaign_id]
    rows, total = await read_page(session, responses, order, limit, offset)
    influence = models.opportunity_influence.c
    counted = await session.execute(
        select(influence.campaign_id, func.count(func.distinct(influence.opportunity_id)))
        .where(influence.campaign_id.in_([r.campaign_id for r in rows]))
        .group_by(influence.campaign_id)
    )
    influenced: dict[str, int] = {campaign: n for campaign, n in counted}
    items = [
        CampaignOut(
            campaign_id=r.campaign_id,
            members=r.members,
            touches=r.touches,
            first_touch_at=r.first_touch_at,
            last_touch_at=r.last_touch_at,
            opportunities=influenced.get(r.campaign_id, 0),
        )
        for r in rows
    ]
    return CampaignPage(items=items, total=total, limit=limit, offset=offset)
