"""The router's HTTP API: reps (admin), leads and queues (SLA breaches and write-backs
are read in modules of their own)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row, Select, func, or_, select

from revops.events.catalogue import RepChanged, RepChangedEvent, make_event
from revops.events.contract import Page, read_page
from revops.events.service import (
    BAD_JSON_BODY,
    NEEDS_A_TOKEN,
    NEEDS_THE_ADMIN_TOKEN,
    Limit,
    Offset,
    ReadAccess,
    Refusal,
    Responses,
    RuntimeDep,
    ServiceRuntime,
    SessionDep,
    StoredText,
    WriteAccess,
    invalid,
    not_found,
)
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.domain.reps import Region, Role
from revops.router.domain.rules import RuleName, members_of
from revops.router.policy_api import publish_acknowledged
from revops.router.reps_api import (
    REP_FIELDS_NEVER_NULL,
    RepCreate,
    RepFields,
    RepOut,
    rep_key,
    rep_out,
)
from revops.router.rotations import ALL_QUEUES
from revops.router.store import rep_from_row
from revops.router.waiting import assign_lead, find_lead, reroute_lead

router = APIRouter(responses=NEEDS_A_TOKEN)


# --- reps ------------------------------------------------------------------------------------


KAFKA_DID_NOT_ACKNOWLEDGE: Responses = {
    503: {
        "model": Refusal,
        "description": "Kafka did not acknowledge the change in time: nothing is stored, "
        "send it again after Retry-After",
    }
}

_APPLIED_WITHIN_MOMENTS = (
    "The change is published on the roster topic and the answer comes once Kafka has "
    "acknowledged it, with the rep as it will be. The router applies it moments later: "
    "until then GET /reps still shows the rep as it was (a new rep is not listed yet)."
)


async def publish_rep(runtime: ServiceRuntime, rep: RepChanged) -> None:
    """Publish a rep's change; the router applies it to its table like any other event."""
    event = make_event(
        RepChangedEvent,
        id=f"rep:{rep.id}:{uuid.uuid4().hex}",
        source="router",
        occurred_at=datetime.now(UTC),
        payload=rep,
    )
    await publish_acknowledged(runtime, event, f"the change of rep {rep.id!r}")


@router.post(
    "/reps",
    dependencies=[WriteAccess],
    status_code=201,
    tags=["reps"],
    description="Add a rep to the roster. " + _APPLIED_WITHIN_MOMENTS,
    responses={
        **NEEDS_THE_ADMIN_TOKEN,
        **BAD_JSON_BODY,
        409: {"model": Refusal, "description": "a rep with this id already exists"},
        **KAFKA_DID_NOT_ACKNOWLEDGE,
    },
)
async def create_rep(body: RepCreate, session: SessionDep, runtime: RuntimeDep) -> RepOut:
    # Two creates of one id within moments may both pass this check and both be
    # published: the router applies the second as an update (the last change wins).
    if await session.scalar(select(m.reps.c.id).where(m.reps.c.id == body.id)) is not None:
        raise HTTPException(409, f"rep {body.id!r} already exists")
    rep = RepChanged(change="created", **body.model_dump())
    await publish_rep(runtime, rep)
    return RepOut(**rep.model_dump(exclude={"change"}), position=None)


class RepPage(Page[RepOut]):
    """A page of the roster, in rotation order."""


@router.get("/reps", dependencies=[ReadAccess], tags=["reps"])
async def list_reps(
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    role: Role | None = None,
    region: Region | None = None,
) -> RepPage:
    query = select(m.reps)
    if role:
        query = query.where(m.reps.c.role == role)
    if region:
        query = query.where(m.reps.c.region == region)
    rows, total = await read_page(session, query, [m.reps.c.position], limit, offset)
    return RepPage(items=[rep_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/reps/{rep_id}", dependencies=[ReadAccess], tags=["reps"], responses=not_found("rep"))
async def get_rep(rep_id: StoredText, session: SessionDep) -> RepOut:
    rep_id = rep_key(rep_id)
    row = (await session.execute(select(m.reps).where(m.reps.c.id == rep_id))).first()
    if row is None:
        raise HTTPException(404, f"no rep {rep_id!r}")
    return rep_out(row)


@router.patch(
    "/reps/{rep_id}",
    dependencies=[WriteAccess],
    tags=["reps"],
    description="Change the fields given, keep the others. "
    + _APPLIED_WITHIN_MOMENTS
    + " The change is merged with the rep as the router has applied it: wait until one "
    "change shows in GET /reps/{id} before the next of the same rep.",
    responses={
        **NEEDS_THE_ADMIN_TOKEN,
        **BAD_JSON_BODY,
        **not_found("rep"),
        **KAFKA_DID_NOT_ACKNOWLEDGE,
    },
)
async def update_rep(
    rep_id: StoredText, body: RepFields, session: SessionDep, runtime: RuntimeDep
) -> RepOut:
    rep_id = rep_key(rep_id)
    values = body.model_dump(exclude_unset=True)
    for name, value in values.items():
        if value is None and name in REP_FIELDS_NEVER_NULL:
            raise invalid("body", name, "may not be null")
    row = (await session.execute(select(m.reps).where(m.reps.c.id == rep_id))).first()
    if row is None:
        raise HTTPException(404, f"no rep {rep_id!r}")
    current = {name: row._mapping[name] for name in RepChanged.model_fields if name != "change"}
    rep = RepChanged(change="updated", **{**current, **values})
    await publish_rep(runtime, rep)
    return RepOut(**rep.model_dump(exclude={"change"}), position=row.position)


# --- leads -----------------------------------------------------------------------------------


class LeadOut(BaseModel):
    id: str = Field(description="the router's id of the lead")
    email: str = Field(description="the lead's email, lower case (one lead per email)")
    account_id: str | None = Field(description="the CRM account it matched; null: none")
    match: str = Field(
        description="how the account was matched: exact_domain, parent_domain, "
        "company_name, none_free_mail or none"
    )
    owner_id: str | None = Field(description="the rep who owns it; null: nobody yet")
    owner_role: str | None = Field(description="the owner's role, SDR or AE")
    rule: str = Field(
        description="the rule that decided its owner: recent_touch, open_opportunity, "
        "round_robin, manual_review, unassigned or manual (by an admin)"
    )
    reason: str = Field(description="why, in words (an admin's reason for a manual one)")
    queue: str | None = Field(
        description="the rotation it was routed through, or the waiting queue it is in"
    )
    turn: int | None = Field(description="the rotation's turn it took; null: none taken")
    priority: str = Field(description="high or normal")
    region: str | None = Field(description="AMER, EMEA or APAC; null: none known")
    status: str | None = Field(description="the lead's status in the CRM")
    review_with_sdr_id: str | None = Field(
        description="the SDR the owning AE reviews the lead with (an open opportunity's)"
    )
    hubspot_id: str | None = Field(description="the lead's id in HubSpot")
    salesforce_id: str | None = Field(description="the lead's id in Salesforce")
    created_at: datetime = Field(description="when the lead arrived (its first form)")
    routed_at: datetime = Field(description="when its latest routing decision was made")
    first_touch_at: datetime | None = Field(
        description="the owner's first activity on it (the first-touch SLA's clock stops)"
    )
    first_status_change_at: datetime | None = Field(
        description="its first status change in the CRM (the status SLA's clock stops)"
    )
    converted_at: datetime | None = Field(description="when it was converted; null: not yet")
    policy_version: int | None = Field(
        default=None, description="the routing policy's version the decision was made under"
    )
    territory: str | None = Field(default=None, description="the territory that matched")
    state: str | None = Field(default=None, description="the state or province it gave")
    employees: int | None = Field(default=None, description="the company size it gave")
    segment: str | None = Field(default=None, description="the segment it gave")
    company: str | None = Field(default=None, description="the company name it gave")
    match_score: float | None = Field(
        default=None, description="match company_name: the account name's score (0-100)"
    )


def _lead_out(row: Row[Any]) -> LeadOut:
    return LeadOut.model_validate(dict(row._mapping))


class LeadPage(Page[LeadOut]):
    """A page of leads, in the order they arrived."""


# Every queue a lead can be in: the regions' rotations and the two waiting queues
# (tests/unit/test_read_filters.py holds it to rotations.ALL_QUEUES).
QueueName = Literal[
    "inbound-AMER",
    "inbound-EMEA",
    "inbound-APAC",
    "ae-AMER",
    "ae-EMEA",
    "ae-APAC",
    "unassigned",
    "manual_review",
]


def leads_query(
    email: str | None = None,
    rule: str | None = None,
    queue: str | None = None,
    owner_id: str | None = None,
) -> Select[Any]:
    """The leads a list asks for (each filter has an index in arrival order: models.py)."""
    query = select(m.leads)
    if email:
        query = query.where(m.leads.c.email == email.strip().lower())
    if rule:
        query = query.where(m.leads.c.rule == rule)
    if queue:
        query = query.where(m.leads.c.queue == queue)
    if owner_id:
        query = query.where(m.leads.c.owner_id == owner_id)
    return query


def leads_order(newest_first: bool = False) -> list[Any]:
    columns = (m.leads.c.created_at, m.leads.c.id)
    return [c.desc() if newest_first else c.asc() for c in columns]


@router.get("/leads", dependencies=[ReadAccess], tags=["leads"])
async def list_leads(
    session: SessionDep,
    email: StoredText | None = None,
    rule: RuleName | None = None,
    queue: QueueName | None = None,
    owner_id: StoredText | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
    newest_first: bool = False,
) -> LeadPage:
    """Leads by the time they arrived, the oldest first unless ``newest_first``."""
    query = leads_query(email=email, rule=rule, queue=queue, owner_id=owner_id)
    rows, total = await read_page(session, query, leads_order(newest_first), limit, offset)
    return LeadPage(items=[_lead_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/leads/{lead_id}", dependencies=[ReadAccess], tags=["leads"], responses=not_found("lead")
)
async def get_lead(lead_id: StoredText, session: SessionDep) -> LeadOut:
    """By the router's id or the lead's HubSpot / Salesforce id."""
    row = (
        await session.execute(
            select(m.leads)
            .where(
                or_(
                    m.leads.c.id == lead_id,
                    m.leads.c.hubspot_id == lead_id,
                    m.leads.c.salesforce_id == lead_id,
                )
            )
            .limit(1)
        )
    ).first()
    if row is None:
        raise HTTPException(404, f"no lead {lead_id!r}")
    return _lead_out(row)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner_id: StoredText = Field(min_length=1, max_length=64, description="the rep's id")
    reason: StoredText = Field(
        min_length=1, max_length=500, description="why, kept as the lead's routing reason"
    )


CONVERTED_LEAD: Responses = {
    409: {"model": Refusal, "description": "the lead is converted: its routing is over"}
}


def _context(runtime: ServiceRuntime) -> RouterContext:
    ctx = runtime.context
    assert isinstance(ctx, RouterContext)
    return ctx


def _converted(lead_id: str) -> HTTPException:
    return HTTPException(409, f"lead {lead_id!r} is converted: it is no longer routed")


async def _lead_now(runtime: ServiceRuntime, lead_id: str) -> LeadOut:
    """The lead as committed; the outbox relay is woken for its events and write-back."""
    runtime.relay.wake()
    async with runtime.database.transaction() as session:
        row = await find_lead(session, lead_id)
    assert row is not None
    return _lead_out(row)


@router.post(
    "/leads/{lead_id}/assign",
    dependencies=[WriteAccess],
    tags=["leads"],
    responses={
        **NEEDS_THE_ADMIN_TOKEN,
        **BAD_JSON_BODY,
        **not_found("lead"),
        **CONVERTED_LEAD,
    },
)
async def assign(lead_id: StoredText, body: AssignBody, runtime: RuntimeDep) -> LeadOut:
    """Give the lead to an active rep by hand (rule ``manual``, the reason given). No
    rotation turn is used; a ``lead.routed`` is published and the owner written back to
    the CRMs, as for any decision. 422 names an unknown or inactive rep."""
    at = datetime.now(UTC)
    async with runtime.database.transaction() as session:
        row = await find_lead(session, lead_id, lock=True)
        if row is None:
            raise HTTPException(404, f"no lead {lead_id!r}")
        if row.converted_at is not None:
            raise _converted(lead_id)
        rep_row = (
            await session.execute(select(m.reps).where(m.reps.c.id == body.owner_id))
        ).first()
        if rep_row is None:
            raise invalid("body", "owner_id", f"no rep {body.owner_id!r}")
        rep = rep_from_row(rep_row)
        if not rep.active:
            raise invalid("body", "owner_id", f"rep {rep.id!r} is not active")
        await assign_lead(session, _context(runtime), row, rep, body.reason, at)
        found = str(row.id)
    return await _lead_now(runtime, found)


@router.post(
    "/leads/{lead_id}/reroute",
    dependencies=[WriteAccess],
    tags=["leads"],
    responses={**NEEDS_THE_ADMIN_TOKEN, **not_found("lead"), **CONVERTED_LEAD},
)
async def reroute(lead_id: StoredText, runtime: RuntimeDep) -> LeadOut:
    """Send the lead through the rules of engagement again, as of now (a round-robin
    decision takes the rotation's next turn). When the rules decide what the lead has
    (still nobody eligible, the same owner by the same rule) nothing changes."""
    at = datetime.now(UTC)
    async with runtime.database.transaction() as session:
        row = await reroute_lead(session, _context(runtime), lead_id, at)
        if row is None:
            raise HTTPException(404, f"no lead {lead_id!r}")
        if row.converted_at is not None:
            raise _converted(lead_id)
        found = str(row.id)
    return await _lead_now(runtime, found)


class ConversionOut(BaseModel):
    lead_id: str = Field(description="the router's id of the converted lead")
    account_id: str = Field(description="the account it was converted into")
    opportunity_id: str | None = Field(description="the opportunity made; null: none")
    ae_id: str | None = Field(description="the AE given the opportunity; null: nobody")
    rule: str = Field(description="how the AE was chosen (pair_touch, round_robin, ...)")
    reason: str = Field(description="why, in words")
    sao_sdr_id: str | None = Field(description="the SDR credited with the SAO")
    converted_at: datetime = Field(description="when the lead was converted")


@router.get(
    "/leads/{lead_id}/conversion",
    dependencies=[ReadAccess],
    tags=["leads"],
    responses=not_found("conversion"),
)
async def get_conversion(lead_id: StoredText, session: SessionDep) -> ConversionOut:
    """Who got the opportunity (Assign AE) and which SDR is credited with the SAO."""
    row = (
        await session.execute(select(m.conversions).where(m.conversions.c.lead_id == lead_id))
    ).first()
    if row is None:
        raise HTTPException(404, f"no conversion of lead {lead_id!r}")
    return ConversionOut.model_validate(dict(row._mapping))


# --- queues ----------------------------------------------------------------------------------


class QueueMember(BaseModel):
    rep_id: str = Field(description="the rep's id")
    weight: int = Field(description="turns per round of the rotation (0: none)")
    eligible: bool = Field(
        description="takes turns now: active, certified, not paused, in the office, "
        "under the daily cap"
    )
    daily_cap: int | None = Field(description="the most leads a day; null: no cap")
    assigned_today: int = Field(description="turns taken in this queue on the day")


class QueueOut(BaseModel):
    name: str = Field(description="the rotation, e.g. inbound-AMER")
    role: str = Field(description="whose rotation it is: SDR or AE")
    region: str = Field(description="AMER, EMEA or APAC")
    turn: int = Field(description="the number of the next turn")
    members: list[QueueMember] = Field(description="its reps, in rotation order")
    assigned_today: int = Field(description="turns taken on the day, every member together")


class UnassignedOut(BaseModel):
    name: Literal["unassigned", "manual_review"] = Field(description="the waiting queue")
    count: int = Field(description="leads waiting in it")
    lead_ids: list[str] = Field(description="the first 500 of them, the oldest first")


class QueuesOut(BaseModel):
    day: date = Field(description="the day counted (UTC)")
    queues: list[QueueOut] = Field(description="every rotation")
    waiting: list[UnassignedOut] = Field(description="the leads waiting for a person")


@router.get("/queues", dependencies=[ReadAccess], tags=["queues"])
async def list_queues(session: SessionDep, day: date | None = None) -> QueuesOut:
    """The rotations (members in place order, the next turn's number, counts of the day,
    UTC) and the leads waiting in the unassigned and manual review queues."""
    day = day or datetime.now(UTC).date()
    rep_rows = await session.execute(select(m.reps).order_by(m.reps.c.position))
    reps = [rep_from_row(r) for r in rep_rows]
    cursor_rows = await session.execute(select(m.queues.c.name, m.queues.c.cursor))
    cursors = {str(n): int(c) for n, c in cursor_rows}
    counts: dict[tuple[str, str], int] = {
        (str(q), str(r)): int(n)
        for q, r, n in await session.execute(
            select(m.queue_turns.c.queue, m.queue_turns.c.rep_id, func.count())
            .where(m.queue_turns.c.day == day)
            .group_by(m.queue_turns.c.queue, m.queue_turns.c.rep_id)
        )
    }
    out: list[QueueOut] = []
    for name, role, region in ALL_QUEUES:
        members = members_of([r for r in reps if r.role == role and r.region == region], role)
        listed = [
            QueueMember(
                rep_id=x.rep_id,
                weight=x.weight,
                eligible=x.available,
                daily_cap=x.daily_cap,
                assigned_today=counts.get((name, x.rep_id), 0),
            )
            for x in members
        ]
        out.append(
            QueueOut(
                name=name,
                role=role,
                region=region,
                turn=cursors.get(name, 0),
                members=listed,
                assigned_today=sum(x.assigned_today for x in listed),
            )
        )
    waiting = []
    for queue_name in ("unassigned", "manual_review"):
        # Still nobody's: not converted, and not given an owner since (a transfer, say).
        still_waiting = (
            m.leads.c.queue == queue_name,
            m.leads.c.owner_id.is_(None),
            m.leads.c.converted_at.is_(None),
        )
        rows = await session.execute(
            select(m.leads.c.id).where(*still_waiting).order_by(m.leads.c.created_at).limit(500)
        )
        ids = [str(i) for i in rows.scalars()]
        total = await session.scalar(select(func.count()).where(*still_waiting))
        waiting.append(UnassignedOut(name=queue_name, count=int(total or 0), lead_ids=ids))
    return QueuesOut(day=day, queues=out, waiting=waiting)
