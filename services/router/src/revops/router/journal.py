"""Decisions as events: ``lead.routed`` and notifications in the outbox, and the
recorded decisions a rebuild re-applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, get_args

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    AccountTransferred,
    AccountTransferredEvent,
    Envelope,
    LeadAeAssigned,
    LeadAeAssignedEvent,
    LeadConverted,
    LeadRouted,
    LeadRoutedEvent,
    NotificationRequested,
    NotificationRequestedEvent,
    derived_event_id,
    make_event,
)
from revops.events.codec import encode_event
from revops.events.outbox import KAFKA
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.domain.assignment import AeAssignment, AeRule
from revops.router.domain.matching import AccountMatch, MatchKind, email_domain
from revops.router.domain.reps import REGIONS
from revops.router.domain.rotation import RotationState, Turn
from revops.router.domain.rules import (
    Decision,
    Lead,
    RuleName,
)
from revops.router.store import as_arrays, insert_from_arrays

OUTBOX_INSERT = ("event_id", "destination", "topic", "key", "value")


OUTBOX = m.metadata.tables["router.outbox"]


def turn_of(
    rep_id: str | None, slot: int | None, round_: int | None, place: int | None
) -> Turn | None:
    """A recorded turn and the rotation's pointer after it (as published)."""
    if slot is None or rep_id is None:
        return None
    after = place if place is not None else -1
    return Turn(rep_id, slot, RotationState(slot + 1, round_ or 0, after))


def decision_from_record(value: Any) -> Decision:
    p = LeadRouted.model_validate(value)
    turn = turn_of(p.owner_id, p.turn, p.turn_round, p.turn_place)
    rule: RuleName = next((r for r in _RULES if r == p.rule), "unassigned")
    region = next((r for r in REGIONS if r == p.region), None)
    return Decision(
        rule,
        p.owner_id,
        p.owner_role,
        p.queue,
        p.priority,
        p.reason,
        region,
        p.review_with_sdr_id,
        turn,
        territory=p.territory,
        policy_version=p.policy_version,
        escalated_from=tuple(p.escalated_from),
    )


# The rule names a recorded decision may carry, read from their one definition.
_RULES: tuple[RuleName, ...] = get_args(RuleName)


_MATCHES: tuple[MatchKind, ...] = get_args(MatchKind)


def match_from_record(value: Any) -> AccountMatch | None:
    """The account a recorded decision was made with (None: the record does not say). A
    rebuild may apply a Salesforce lead before its account: the lead keeps the account
    the first run matched."""
    p = LeadRouted.model_validate(value)
    how = next((k for k in _MATCHES if k == p.match), None)
    if how is None:
        return None
    return AccountMatch(p.account_id, how, email_domain(p.email), score=p.match_score)


async def record_routes(session: AsyncSession, decisions: Sequence[LeadRouted]) -> None:
    """Keep each lead's latest decision: one with ``decided_at`` (a re-route, an admin's)
    replaces one without (the first) or an older one; in a tie the later on the topic."""
    latest: dict[str, LeadRouted] = {}
    for d in decisions:
        known = latest.get(d.lead_id)
        if known is None or (d.decided_at is not None and not _decided_before(d, known)):
            latest[d.lead_id] = d
    if not latest:
        return
    stmt = pg_insert(m.recorded_routes).values(
        [{"lead_id": d.lead_id, "decision": d.model_dump(mode="json")} for d in latest.values()]
    )
    stored = sa.cast(m.recorded_routes.c.decision["decided_at"].as_string(), sa.DateTime(True))
    new = sa.cast(stmt.excluded.decision["decided_at"].as_string(), sa.DateTime(True))
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["lead_id"],
            set_={"decision": stmt.excluded.decision},
            where=new.is_not(None) & (stored.is_(None) | (new >= stored)),
        )
    )


def _decided_before(d: LeadRouted, known: LeadRouted) -> bool:
    if known.decided_at is None or d.decided_at is None:
        return False
    return d.decided_at < known.decided_at


_AE_RULES: tuple[AeRule, ...] = get_args(AeRule)


def ae_assigned_event(
    assigned: LeadAeAssigned,
) -> LeadAeAssignedEvent:
    """A conversion's Assign AE as journaled: its id from the conversion's, so a replay
    derives the same."""
    return make_event(
        LeadAeAssignedEvent,
        id=derived_event_id("router", "lead.ae_assigned", assigned.conversion_id),
        source="router",
        occurred_at=assigned.converted_at,
        payload=assigned,
    )


def ae_assignment_of(
    conversion_id: str,
    lead_id: str,
    converted: LeadConverted,
    assignment: AeAssignment,
    sao_sdr_id: str | None,
    at: datetime,
) -> LeadAeAssigned:
    """The journal's record of a conversion's decision."""
    turn = assignment.turn
    return LeadAeAssigned(
        conversion_id=conversion_id,
        lead_id=lead_id,
        account_id=converted.account_id,
        opportunity_id=converted.opportunity_id,
        ae_id=assignment.ae_id,
        rule=assignment.rule,
        reason=assignment.reason,
        sao_sdr_id=sao_sdr_id,
        converted_at=at,
        queue=assignment.queue,
        turn=turn.slot if turn else None,
        turn_round=turn.after.round if turn else None,
        turn_place=turn.after.after if turn else None,
        source_ref=converted.source_ref,
    )


def assignment_from_record(p: LeadAeAssigned) -> AeAssignment:
    """A recorded Assign AE, turn and all."""
    rule: AeRule = next((r for r in _AE_RULES if r == p.rule), "unassigned")
    turn = turn_of(p.ae_id, p.turn, p.turn_round, p.turn_place)
    return AeAssignment(rule, p.ae_id, p.reason, p.queue, turn)


async def record_conversions(session: AsyncSession, assigned: Sequence[LeadAeAssigned]) -> None:
    """Each conversion's recorded decision (a replayed one is the same)."""
    rows = {a.conversion_id: a.model_dump(mode="json") for a in assigned}
    if rows:
        await session.execute(
            pg_insert(m.recorded_conversions)
            .values([{"conversion_id": k, "assignment": v} for k, v in rows.items()])
            .on_conflict_do_nothing()
        )


def transferred_event(transfer: AccountTransferred) -> AccountTransferredEvent:
    """An account owner change as applied, with the leads it moved; one per change."""
    return make_event(
        AccountTransferredEvent,
        id=derived_event_id("router", "account.transferred", transfer.change_id),
        source="router",
        occurred_at=transfer.transferred_at,
        payload=transfer,
    )


async def record_transfers(session: AsyncSession, transfers: Sequence[AccountTransferred]) -> None:
    """The recorded owner changes, and their moves by lead."""
    by_change = {t.change_id: t for t in transfers}
    if not by_change:
        return
    await session.execute(
        pg_insert(m.recorded_transfers)
        .values(
            [
                {
                    "change_id": t.change_id,
                    "account_id": t.account_id,
                    "transferred_at": t.transferred_at,
                    "transfer": t.model_dump(mode="json"),
                }
                for t in by_change.values()
            ]
        )
        .on_conflict_do_nothing()
    )
    moves = {
        (lead_id, t.transferred_at): {
            "lead_id": lead_id,
            "transferred_at": t.transferred_at,
            "account_id": t.account_id,
            "from_sdr_id": t.from_sdr_id,
            "to_sdr_id": t.to_sdr_id,
        }
        for t in by_change.values()
        if t.to_sdr_id is not None
        for lead_id in t.lead_ids
    }
    if moves:
        await session.execute(
            pg_insert(m.recorded_moves).values(list(moves.values())).on_conflict_do_nothing()
        )


def decision_events(lead: Lead, match: AccountMatch, d: Decision) -> list[Envelope]:
    payload = LeadRouted(
        lead_id=lead.lead_id,
        email=lead.email,
        owner_id=d.owner_id,
        owner_role=d.owner_role,
        rule=d.rule,
        queue=d.queue,
        reason=d.reason,
        priority=d.priority,
        account_id=match.account_id,
        turn=d.turn.slot if d.turn else None,
        turn_round=d.turn.after.round if d.turn else None,
        turn_place=d.turn.after.after if d.turn else None,
        match=match.how,
        region=d.region,
        review_with_sdr_id=d.review_with_sdr_id,
        territory=d.territory,
        policy_version=d.policy_version,
        match_score=match.score,
        escalated_from=list(d.escalated_from),
    )
    events: list[Envelope] = [
        make_event(
            LeadRoutedEvent,
            id=derived_event_id("router", "lead.routed", lead.lead_id),
            source="router",
            occurred_at=lead.occurred_at,
            payload=payload,
        )
    ]
    if d.priority == "high" and d.owner_id is not None:
        events.append(
            notification(
                "high_priority_lead",
                [d.owner_id],
                f"High-priority lead {lead.email} ({lead.form_type}): {d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    if d.notify_waiting:
        events.append(
            notification(
                "high_priority_lead_waiting",
                d.notify_waiting,
                f"High-priority lead {lead.email} ({lead.form_type}) waits in {d.queue}: "
                f"{d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    if d.rule == "open_opportunity" and d.owner_id is not None:
        recipients = [d.owner_id, *([d.review_with_sdr_id] if d.review_with_sdr_id else [])]
        events.append(
            notification(
                "open_opportunity_review",
                recipients,
                f"Lead {lead.email}: {d.reason}",
                lead.lead_id,
                lead.occurred_at,
            )
        )
    return events


def notification(
    kind: str, recipients: Sequence[str], message: str, subject_id: str, at: datetime
) -> NotificationRequestedEvent:
    return make_event(
        NotificationRequestedEvent,
        id=derived_event_id("router", kind, subject_id, at.isoformat()),
        source="router",
        occurred_at=at,
        payload=NotificationRequested(
            kind=kind, recipients=list(recipients), message=message, subject_id=subject_id
        ),
    )


async def add_events(session: AsyncSession, ctx: RouterContext, events: Sequence[Envelope]) -> None:
    """Queue derived events in the outbox, in one statement."""
    if events:
        await add_to_outbox(session, outbox_rows(ctx, events))


def outbox_rows(ctx: RouterContext, events: Sequence[Envelope]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": e.id,
            "destination": KAFKA,
            "topic": e.topic.name(ctx.prefix),
            "key": e.key,
            "value": encode_event(e),
        }
        for e in events
    ]


async def add_to_outbox(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Outbox rows in one statement, in order (ids follow it); an id already there is
    queued once."""
    statement = insert_from_arrays(OUTBOX, OUTBOX_INSERT).on_conflict_do_nothing(
        index_elements=["event_id"]
    )
    await session.execute(statement, as_arrays(rows, OUTBOX_INSERT))


async def notify(
    session: AsyncSession,
    ctx: RouterContext,
    kind: str,
    recipients: Sequence[str],
    message: str,
    subject_id: str,
    at: datetime,
) -> None:
    await add_events(session, ctx, [notification(kind, recipients, message, subject_id, at)])
