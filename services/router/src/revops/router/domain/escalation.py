"""SLA escalation: a lead whose owner let the first-touch SLA pass untouched goes to the
next rep of its queue's rotation (at most a configured number of times), then to the
queue's manager, as the routing policy says for that queue.

Each owner gets the whole first-touch target from the moment they got the lead, counted
on the queue's SLA calendar (business hours where the policy has one): the lead's own SLA
breach, timed from its arrival, is reported as before. A rep who loses a lead this way is
passed over for its reassignments and keeps their place in the rotation: the turn they
used is not given back, and the pointer moves on to the rep who takes the lead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from revops.router.domain.business_hours import deadline
from revops.router.domain.reps import Rep
from revops.router.domain.rotation import Turn, next_turn
from revops.router.domain.rules import QueueSnapshot, members_on_shift
from revops.router.domain.territories import EscalationRule
from revops.router.domain.working_hours import WorkingHours

EscalationKind = Literal["reassigned", "manager"]


@dataclass(frozen=True)
class OwnedLead:
    """A lead as the escalation sees it: who owns it since when, and who lost it before."""

    lead_id: str
    owner_id: str
    queue: str
    owner_since: datetime  # when the owner got it: their first-touch clock starts there
    first_touch_at: datetime | None = None  # the lead's first touch, by anyone
    # The reps the escalation took this lead from, in order (its count of reassignments).
    escalated_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Escalation:
    lead_id: str
    kind: EscalationKind
    from_rep_id: str
    to_rep_id: str
    due: datetime  # when the owner's first-touch time ran out
    escalated_from: tuple[str, ...]  # the lead's losers so far, ``from_rep_id`` last
    turn: Turn | None = None  # a reassignment's turn of the rotation; none for the manager


def first_touch_due(lead: OwnedLead, calendar: WorkingHours | None, target: timedelta) -> datetime:
    """When the owner's first-touch time runs out (open time only, with a calendar)."""
    return deadline(calendar, lead.owner_since, target)


def escalation_of(
    lead: OwnedLead,
    rule: EscalationRule | None,
    queue: QueueSnapshot,
    reps: Mapping[str, Rep],
    calendar: WorkingHours | None,
    target: timedelta,
    now: datetime,
) -> Escalation | None:
    """What happens to ``lead`` at ``now``; None: nothing (no rule for its queue, touched,
    still in time, or nobody to take it).

    Exactly at the due instant is in time. While reassignments are left, the next rep of
    the rotation who may take a turn at ``now`` (on shift, not paused, under their cap)
    and never lost this lead takes it; with none left, or nobody eligible, the manager
    takes it. A lead with the manager is never escalated again.
    """
    if rule is None or rule.queue != lead.queue or rule.queue != queue.name:
        return None
    if lead.first_touch_at is not None and lead.first_touch_at <= now:
        return None
    if lead.owner_id == rule.manager_id:
        return None
    due = first_touch_due(lead, calendar, target)
    if now <= due:
        return None
    losers = (*lead.escalated_from, lead.owner_id)
    if len(lead.escalated_from) < rule.reassign:
        turn = _next_rep(queue, reps, set(losers), now)
        if turn is not None:
            return Escalation(
                lead.lead_id, "reassigned", lead.owner_id, turn.rep_id, due, losers, turn
            )
    if rule.manager_id is not None and rule.manager_id in reps:
        return Escalation(lead.lead_id, "manager", lead.owner_id, rule.manager_id, due, losers)
    return None


def _next_rep(
    queue: QueueSnapshot, reps: Mapping[str, Rep], losers: set[str], now: datetime
) -> Turn | None:
    """The rotation's next turn at ``now`` with the lead's losers passed over (they keep
    their place, like a pause)."""
    members = members_on_shift(queue.members, reps, now)
    members = tuple(replace(m, available=False) if m.rep_id in losers else m for m in members)
    return next_turn(members, queue.state, queue.assigned_today)


def escalation_reason(escalation: Escalation, target: timedelta, queue: str) -> str:
    """The decision's reason, as the lead's list and the CRM's history show it."""
    minutes = f"{target.total_seconds() / 60:g}-minute"
    untouched = f"{escalation.from_rep_id} left the {minutes} first touch untouched"
    if escalation.kind == "manager":
        return f"SLA escalation: {untouched}; escalated to {queue}'s manager"
    count = len(escalation.escalated_from)
    turn = escalation.turn.slot if escalation.turn else "?"
    return f"SLA escalation: {untouched}; reassignment {count} in {queue}, turn {turn}"
