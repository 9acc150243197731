"""The routing policy's admin API: read it, change it (validated, then published on the
roster topic like a rep's change), and ask where a lead would go without routing it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    Email,
    Envelope,
    RoutingPolicyChanged,
    RoutingPolicyChangedEvent,
    make_event,
)
from revops.events.producer import KafkaUnavailable
from revops.events.service import (
    BAD_JSON_BODY,
    NEEDS_A_TOKEN,
    NEEDS_THE_ADMIN_TOKEN,
    Moment,
    ReadAccess,
    Refusal,
    Responses,
    RuntimeDep,
    ServiceRuntime,
    SessionDep,
    StoredText,
    WriteAccess,
)
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.domain.matching import AccountMatch
from revops.router.domain.rotation import RotationState
from revops.router.domain.rules import Decision
from revops.router.domain.territories import InvalidPolicy
from revops.router.leads import (
    NewPerson,
    RoutingBatch,
    decide,
    lead_of,
    load_routing_state,
    match_person,
)
from revops.router.policies import current_policy
from revops.router.policy_document import parse_document
from revops.router.store import load_reps

router = APIRouter(responses=NEEDS_A_TOKEN, tags=["routing policy"])


def _context(runtime: ServiceRuntime) -> RouterContext:
    ctx = runtime.context
    assert isinstance(ctx, RouterContext)
    return ctx


class PolicyOut(BaseModel):
    version: int = Field(description="0: the configuration's policy, before any change")
    document: str | None = Field(description="as given; null for the built-in default")
    changed_by: str | None = Field(default=None, description="who changed it, as they said")
    changed_at: datetime | None = Field(
        default=None, description="when it was changed; null: the configuration's"
    )
    territories: list[str] = Field(description="the territories' names, in matching order")


@router.get("/routing-policy", dependencies=[ReadAccess])
async def get_policy(session: SessionDep, runtime: RuntimeDep) -> PolicyOut:
    """The policy in force: the newest version the router has applied."""
    ctx = _context(runtime)
    policy = await current_policy(session, ctx)
    names = [t.name for t in policy.territories]
    if policy.version == 0:
        path = ctx.settings.routing_policy_file
        text = path.read_text(encoding="utf-8") if path is not None else None
        return PolicyOut(version=0, document=text, territories=names)
    row = (
        await session.execute(
            select(m.routing_policies).where(m.routing_policies.c.version == policy.version)
        )
    ).one()
    return PolicyOut(
        version=row.version,
        document=row.document,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        territories=names,
    )


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: str = Field(
        min_length=1, max_length=2_000_000, description="the policy as YAML or JSON text"
    )
    changed_by: StoredText | None = Field(
        default=None, max_length=200, description="who changes it, kept with the version"
    )


class PolicyAccepted(BaseModel):
    territories: list[str] = Field(description="the territories' names, in matching order")
    version_after: int = Field(
        description="the version it will have once applied, unless another change is "
        "published first (the router numbers changes in the order Kafka received them)"
    )


POLICY_REFUSED: Responses = {
    422: {
        "description": "the document is refused as a whole: one entry per error, with "
        "`line` (1-based; null when the document has none) and `field`",
    },
    503: {
        "model": Refusal,
        "description": "Kafka did not acknowledge the change in time: send it again",
    },
}


@router.put(
    "/routing-policy",
    status_code=202,
    dependencies=[WriteAccess],
    responses={**NEEDS_THE_ADMIN_TOKEN, **BAD_JSON_BODY, **POLICY_REFUSED},
)
async def change_policy(
    body: PolicyChange, session: SessionDep, runtime: RuntimeDep
) -> PolicyAccepted:
    """Replace the routing policy. The document is validated as a whole (every error named
    with its line and field; the policy in force stays), then published on the roster
    topic; the router applies it moments later, before any lead sent after this answer."""
    try:
        document = parse_document(body.document)
    except InvalidPolicy as refused:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "document"),
                    "msg": str(error),
                    "type": "value_error",
                    "line": error.line,
                    "field": error.field,
                }
                for error in refused.errors
            ]
        ) from refused
    policy = await current_policy(session, _context(runtime))
    await _publish(
        runtime, RoutingPolicyChanged(document=body.document, changed_by=body.changed_by)
    )
    return PolicyAccepted(
        territories=[t.name for t in document.territories], version_after=policy.version + 1
    )


async def _publish(runtime: ServiceRuntime, change: RoutingPolicyChanged) -> None:
    event = make_event(
        RoutingPolicyChangedEvent,
        id=f"routing-policy:{uuid.uuid4().hex}",
        source="router",
        occurred_at=datetime.now(UTC),
        payload=change,
    )
    await publish_acknowledged(runtime, event, "the policy change")


async def publish_acknowledged(runtime: ServiceRuntime, event: Envelope, what: str) -> None:
    """Publish a change the router applies like any other event; a 503 that says so when
    Kafka does not acknowledge it in time (nothing stored: the caller sends it again)."""
    try:
        await runtime.producer.publish([event])
    except KafkaUnavailable as exc:
        raise HTTPException(
            503,
            f"Kafka did not acknowledge {what} in time: nothing is stored, send it again (if "
            "Kafka received it after all, it is applied as sent)",
            headers={"Retry-After": "1"},
        ) from exc


class DryRunLead(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: Email = Field(description="the lead's email (its domain finds the account)")
    country: StoredText | None = Field(default=None, max_length=100, description="as given")
    state: StoredText | None = Field(
        default=None, max_length=100, description="the state or province, as given"
    )
    employees: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="the company's size, as given"
    )
    segment: StoredText | None = Field(default=None, max_length=100, description="as given")
    company: StoredText | None = Field(
        default=None, max_length=255, description="the company name given (matched by name)"
    )
    form_type: StoredText | None = Field(
        default=None, max_length=50, description="the form it came from (demo_request, ...)"
    )
    is_consultant: bool = Field(default=False, description="the lead says it is a consultant")
    at: Moment | None = Field(default=None, description="decide as of; default: now")


class DryRunAnswer(BaseModel):
    owner_id: str | None = Field(description="the rep it would go to; null: it would wait")
    owner_role: str | None = Field(description="SDR or AE")
    rule: str = Field(description="the rule of engagement that would decide")
    queue: str | None = Field(description="the rotation or waiting queue")
    turn: int | None = Field(description="the rotation's turn number it would take")
    reason: str = Field(description="why, in words")
    priority: str = Field(description="the lead's priority (high for demo and contact forms)")
    region: str | None = Field(description="the region its country falls in")
    territory: str | None = Field(description="the territory that matched; null: none did")
    policy_version: int | None = Field(description="the routing policy version it used")
    account_id: str | None = Field(description="the CRM account it matched; null: none")
    match: str = Field(
        description="how the account was matched: exact_domain, parent_domain, "
        "company_name, none_free_mail or none"
    )
    match_score: float | None = Field(description="company_name: the account name's score")
    known_lead: bool = Field(
        description="a lead with this email exists: a new form would be a touchpoint on "
        "it, which keeps its owner; the answer is what the rules would decide for a new one"
    )


@router.post("/routing-policy/dry-run", dependencies=[ReadAccess], responses={**BAD_JSON_BODY})
async def dry_run(body: DryRunLead, runtime: RuntimeDep) -> DryRunAnswer:
    """Where this lead would go now, and why, without routing it: the rules, the policy
    in force and the rotations as they are (no turn is taken, nothing is stored)."""
    ctx = _context(runtime)
    at = body.at or datetime.now(UTC)
    person = NewPerson(
        f"dry-run:{uuid.uuid4().hex}",
        body.email,
        at if at.tzinfo is not None else at.replace(tzinfo=UTC),
        "form",
        body.form_type,
        body.country,
        body.is_consultant,
        None,
        None,
        state=body.state,
        employees=body.employees,
        segment=body.segment,
        company=body.company,
    )
    # A session of its own, never committed: nothing a dry run does is kept.
    async with runtime.database.sessions() as session:
        decision, match, known = await _decide(session, ctx, person)
    return _answer(decision, match, known)


async def _decide(
    session: AsyncSession, ctx: RouterContext, person: NewPerson
) -> tuple[Decision, AccountMatch, bool]:
    batch = RoutingBatch({}, {}, {}, {}, {}, {}, {}, [])
    await load_routing_state(session, ctx, [person], batch)
    match = match_person(ctx, person, batch)
    account = batch.accounts.get(match.account_id) if match.account_id else None
    states = await _rotations(session)
    reps = await load_reps(session)
    decision = decide(ctx, person, lead_of(person), account, batch, reps, {}, states)
    known = await session.scalar(select(m.leads.c.id).where(m.leads.c.email == person.email))
    return decision, match, known is not None


async def _rotations(session: AsyncSession) -> dict[str, RotationState]:
    """Every rotation's pointer, read without the lock routing takes: a dry run never
    waits for a batch, nor makes one wait."""
    q = m.queues
    rows = await session.execute(select(q.c.name, q.c.cursor, q.c.rotation))
    return {str(n): RotationState.from_json(int(c), v) for n, c, v in rows}


def _answer(decision: Decision, match: AccountMatch, known: bool) -> DryRunAnswer:
    d = decision
    return DryRunAnswer(
        owner_id=d.owner_id,
        owner_role=d.owner_role,
        rule=d.rule,
        queue=d.queue,
        turn=d.turn.slot if d.turn else None,
        reason=d.reason,
        priority=d.priority,
        region=d.region,
        territory=d.territory,
        policy_version=d.policy_version,
        account_id=match.account_id,
        match=match.how,
        match_score=match.score,
        known_lead=known,
    )
