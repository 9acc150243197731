"""Attribution's read API (bearer token): a person's sources, an opportunity's source
and influence, and pipeline by source."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import RowMapping, func, select

from revops.attribution import models
from revops.attribution.domain.influence import AttributionModel
from revops.events.catalogue import normalise_email
from revops.events.contract import MomentOrDay, Money, end_of, start_of
from revops.events.service import (
    NEEDS_A_TOKEN,
    ReadAccess,
    RuntimeDep,
    SessionDep,
    StoredText,
    invalid,
    not_found,
)

router = APIRouter(tags=["attribution"], responses=NEEDS_A_TOKEN)

MODELS = tuple(AttributionModel)


class TouchOut(BaseModel):
    touch_id: str = Field(description="the id of the event that carried the touch")
    kind: str = Field(description="form, cloud_signup or private_install")
    form_id: str | None = Field(description="the form submitted; null: a sign-up")
    form_type: str | None = Field(description="the form's type (demo_request, ebook, ...)")
    campaign_id: str | None = Field(description="the campaign the form belongs to, if any")
    page_url: str | None = Field(description="the page the form or sign-up was on")
    touched_at: datetime = Field(description="when the person submitted or signed up")


class LeadOut(BaseModel):
    email: str = Field(description="the person's email, lower case (who they are here)")
    lead_source: str | None = Field(description="Inbound, Referral, SDR Created, ... (RULES)")
    first_touchpoint: str | None = Field(
        description="the kind of their first gated touch (form or sign-up), never overwritten"
    )
    first_touch_at: datetime | None = Field(description="when that first gated touch was")
    original_source: str | None = Field(
        description="where they first came from, bucketed as HubSpot does (ORGANIC_SEARCH, ...)"
    )
    original_source_detail: str | None = Field(
        description="the detail behind it (the search engine, the campaign, the site)"
    )
    first_url: str | None = Field(description="the first page they were seen on")
    first_referrer: str | None = Field(description="the page that sent them there")
    account_id: str | None = Field(description="the CRM account they belong to, if known")
    touches: list[TouchOut] = Field(description="their gated touches, the oldest first")


class InfluenceOut(BaseModel):
    campaign_id: str = Field(description="the campaign of the influencing touch")
    email: str = Field(description="the person who touched it")
    touch_id: str = Field(description="the id of the event that carried the touch")
    touched_at: datetime = Field(description="when the touch was")
    positions: list[str] = Field(
        description="its places on the journey: FT first touch, LC lead creation, "
        "OC opportunity creation, CW closed won (empty: a touch in between)"
    )
    credit: dict[str, float] = Field(
        description="its share of the opportunity under each model (0 to 1)"
    )


class OpportunityAttributionOut(BaseModel):
    opportunity_id: str = Field(description="the CRM's opportunity id")
    account_id: str | None = Field(description="the CRM account it belongs to")
    opportunity_source: str | None = Field(
        description="where the opportunity came from (Inbound, SDR Created, ...); null: "
        "not decided yet"
    )
    lead_source: str | None = Field(description="the Lead Source decided for the opportunity")
    source_rule: str | None = Field(description="the rule that decided the source")
    reason: str | None = Field(description="why, in words")
    source_email: str | None = Field(description="the person whose record decided it")
    converted_lead_email: str | None = Field(
        description="the lead converted into the opportunity, if one was"
    )
    first_touchpoint: str | None = Field(description="the converted lead's first touchpoint")
    created_at: datetime = Field(
        description="when it was created in the CRM (or first seen here if not known)"
    )
    primary_campaign_id: str | None = Field(
        description="the campaign of the last touch before it was created"
    )
    campaigns: list[InfluenceOut] = Field(
        description="the influencing touches in time order, each with its credit"
    )
    # Per model, credit summed per campaign: each model's values sum to 1.
    credit_by_campaign: dict[str, dict[str, float]] = Field(
        description="per model, each campaign's credit summed; each model's values sum to 1"
    )


class SourceLine(BaseModel):
    key: str | None = Field(description="the source or touchpoint; null: none decided")
    opportunities: int = Field(description="opportunities with it")
    amount: Money = Field(description="their amounts summed")


class CampaignLine(BaseModel):
    campaign_id: str = Field(description="the campaign")
    opportunities: int = Field(description="opportunities it influenced")
    credited_opportunities: float = Field(
        description="its credit summed: a share of each opportunity it influenced"
    )
    credited_amount: Money = Field(description="each opportunity's amount times its credit")


class PipelineBySourceOut(BaseModel):
    from_: datetime | None = Field(
        default=None, alias="from", description="the first moment counted; null: no start"
    )
    to: datetime | None = Field(default=None, description="the end, excluded; null: no end")
    qualified_only: bool = Field(description="only opportunities that were qualified")
    opportunities: int = Field(description="opportunities created in the period")
    amount: Money = Field(description="their amounts summed")
    by_opportunity_source: list[SourceLine] = Field(description="by opportunity source")
    by_first_touchpoint: list[SourceLine] = Field(
        description="by the converted lead's first touchpoint"
    )
    by_campaign: dict[str, list[CampaignLine]] = Field(
        description="per model, the campaigns by credit, the most credited first"
    )

    model_config = ConfigDict(populate_by_name=True)


@router.get("/leads", dependencies=[ReadAccess], responses=not_found("person"))
async def get_lead(
    email: Annotated[StoredText, Query(min_length=3)], session: SessionDep
) -> LeadOut:
    """A person's Lead Source, First Touchpoint, Original Source and gated touches."""
    try:
        person_id = normalise_email(email)
    except ValueError as exc:
        raise invalid("query", "email", str(exc)) from exc
    person = (
        (await session.execute(select(models.people).where(models.people.c.person_id == person_id)))
        .mappings()
        .one_or_none()
    )
    if person is None:
        raise HTTPException(404, f"no person with email {person_id}")
    touches = (
        await session.execute(
            select(models.touches)
            .where(models.touches.c.person_id == person_id)
            .order_by(models.touches.c.occurred_at, models.touches.c.touch_id)
        )
    ).mappings()
    return LeadOut(
        email=person_id,
        lead_source=person["lead_source"],
        first_touchpoint=person["first_touchpoint"],
        first_touch_at=person["first_touch_at"],
        original_source=person["original_source"],
        original_source_detail=person["original_source_detail"],
        first_url=person["first_url"],
        first_referrer=person["first_referrer"],
        account_id=person["account_id"],
        touches=[
            TouchOut(
                touch_id=t["touch_id"],
                kind=t["kind"],
                form_id=t["form_id"],
                form_type=t["form_type"],
                campaign_id=t["campaign_id"],
                page_url=t["page_url"],
                touched_at=t["occurred_at"],
            )
            for t in touches
        ],
    )


def _credits(row: RowMapping) -> dict[str, float]:
    return {model.value: float(row[models.credit_column(model)]) for model in MODELS}


@router.get(
    "/opportunities/{opportunity_id}/attribution",
    dependencies=[ReadAccess],
    responses=not_found("opportunity"),
)
async def get_opportunity_attribution(
    opportunity_id: StoredText, session: SessionDep
) -> OpportunityAttributionOut:
    """The opportunity's source, the rule that decided it and why, its primary campaign
    and the influencing campaign touches with their credit under every model."""
    table = models.opportunities
    opportunity = (
        (await session.execute(select(table).where(table.c.opportunity_id == opportunity_id)))
        .mappings()
        .one_or_none()
    )
    if opportunity is None or opportunity["is_deleted"]:
        raise HTTPException(404, f"no opportunity {opportunity_id}")
    influence_table = models.opportunity_influence
    rows = (
        await session.execute(
            select(influence_table)
            .where(influence_table.c.opportunity_id == opportunity_id)
            .order_by(influence_table.c.touched_at, influence_table.c.touch_id)
        )
    ).mappings()
    campaigns = [
        InfluenceOut(
            campaign_id=row["campaign_id"],
            email=row["person_id"],
            touch_id=row["touch_id"],
            touched_at=row["touched_at"],
            positions=[p for p in row["positions"].split(",") if p],
            credit=_credits(row),
        )
        for row in rows
    ]
    by_campaign: dict[str, dict[str, float]] = {}
    for model in MODELS:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for touch in campaigns:
            totals[touch.campaign_id] += Decimal(str(touch.credit[model.value]))
        by_campaign[model.value] = {k: float(v) for k, v in totals.items()}
    return OpportunityAttributionOut(
        opportunity_id=opportunity_id,
        account_id=opportunity["account_id"],
        opportunity_source=opportunity["opportunity_source"],
        lead_source=opportunity["lead_source"],
        source_rule=opportunity["source_rule"],
        reason=opportunity["reason"],
        source_email=opportunity["source_person_id"],
        converted_lead_email=opportunity["converted_person_id"],
        first_touchpoint=opportunity["first_touchpoint"],
        created_at=opportunity["crm_created_at"] or opportunity["first_seen_at"],
        primary_campaign_id=opportunity["primary_campaign_id"],
        campaigns=campaigns,
        credit_by_campaign=by_campaign,
    )


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


@router.get("/reports/pipeline-by-source", dependencies=[ReadAccess])
async def pipeline_by_source(
    session: SessionDep,
    runtime: RuntimeDep,
    from_: Annotated[MomentOrDay | None, Query(alias="from")] = None,
    to: Annotated[MomentOrDay | None, Query()] = None,
    qualified_only: bool = False,
) -> PipelineBySourceOut:
    """Opportunities created in [from, to): counts and amounts by opportunity source, by
    the converted lead's first touchpoint, and by campaign under every model (a campaign's
    share of an opportunity is its credit). A day is the company's (COMPANY_TIMEZONE):
    ``from`` its first moment, ``to`` its end."""
    zone = runtime.settings.company_timezone
    start = start_of(from_, zone) if from_ is not None else None
    end = end_of(to, zone) if to is not None else None
    if start and end and end <= start:
        raise invalid("query", "to", "`to` must be after `from`")
    table = models.opportunities
    created = func.coalesce(table.c.crm_created_at, table.c.first_seen_at)
    conditions: list[Any] = [table.c.is_deleted.is_not(True)]
    if start:
        conditions.append(created >= start)
    if end:
        conditions.append(created < end)
    if qualified_only:
        conditions.append(table.c.qualified_at.is_not(None))
    amount = func.coalesce(func.sum(table.c.amount), 0)

    async def by(column: Any) -> list[SourceLine]:
        result = await session.execute(
            select(column, func.count(), amount)
            .where(*conditions)
            .group_by(column)
            .order_by(column)
        )
        return [SourceLine(key=k, opportunities=n, amount=_money(a)) for k, n, a in result]

    sources = await by(table.c.opportunity_source)
    touchpoints = await by(table.c.first_touchpoint)
    influence = models.opportunity_influence
    campaign_lines: dict[str, list[CampaignLine]] = {}
    for model in MODELS:
        credit = influence.c[models.credit_column(model)]
        result = await session.execute(
            select(
                influence.c.campaign_id,
                func.count(func.distinct(influence.c.opportunity_id)),
                func.sum(credit),
                func.coalesce(func.sum(credit * func.coalesce(table.c.amount, 0)), 0),
            )
            .join(table, table.c.opportunity_id == influence.c.opportunity_id)
            .where(*conditions)
            .group_by(influence.c.campaign_id)
            .order_by(func.sum(credit).desc(), influence.c.campaign_id)
        )
        campaign_lines[model.value] = [
            CampaignLine(
                campaign_id=c,
                opportunities=n,
                credited_opportunities=float(share),
                credited_amount=_money(a),
            )
            for c, n, share, a in result
        ]
    return PipelineBySourceOut(
        from_=start,
        to=end,
        qualified_only=qualified_only,
        opportunities=sum(line.opportunities for line in sources),
        amount=sum((line.amount for line in sources), Decimal(0)),
        by_opportunity_source=sources,
        by_first_touchpoint=touchpoints,
        by_campaign=campaign_lines,
    )
