"""The rules of engagement: who works a new lead, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from revops.router.domain.reps import Region, Rep, Role
from revops.router.domain.rotation import Member, RotationState, Turn, next_turn
from revops.router.domain.territories import (
    LeadFields,
    Placement,
    TerritoryPolicy,
    default_policy,
    place_lead,
)
from revops.router.domain.windows import utc_day, within_days
from revops.router.domain.working_hours import WorkingHours, on_shift

# "manual": an admin gave the lead its owner by hand; "sla_reassigned" / "sla_escalated":
# the SLA escalation gave it to the next rep of its rotation / its queue's manager (never
# decided by ``route_lead``).
RuleName = Literal[
    "recent_touch",
    "open_opportunity",
    "round_robin",
    "manual_review",
    "unassigned",
    "manual",
    "sla_reassigned",
    "sla_escalated",
]
OrderedRule = Literal["recent_touch", "open_opportunity", "round_robin"]
Priority = Literal["high", "normal"]
TouchTarget = Literal["lead", "contact", "account"]

DEFAULT_RULE_ORDER: tuple[OrderedRule, ...] = ("recent_touch", "open_opportunity", "round_robin")
MANUAL_REVIEW_QUEUE = "manual_review"
UNASSIGNED_QUEUE = "unassigned"


@dataclass(frozen=True)
class RoutingPolicy:
    """Every number and list the rules use; the defaults are the handbook's."""

    recent_touch_days: int = 30
    closed_opportunity_days: int = 90
    transfer_credit_days: int = 14
    first_touch_target: timedelta = timedelta(minutes=5)
    first_status_change_limit: timedelta = timedelta(hours=24)
    rule_order: tuple[OrderedRule, ...] = DEFAULT_RULE_ORDER
    high_priority_form_types: frozenset[str] = frozenset(
        {"demo_request", "demo", "contact", "contact_us", "contact_sales"}
    )
    # For leads whose country (and account) says nothing: None sends them to `unassigned`.
    fallback_region: Region | None = None
    # Who is told that a high-priority lead waits in `unassigned` or `manual_review` (rep
    # or user ids); empty: the notice is addressed to the queue's name.
    waiting_lead_recipients: tuple[str, ...] = ()
    # The SLA clocks counted in business hours: a calendar per queue name ("*": every
    # queue not named); a lead of a queue without one is timed on the wall clock.
    sla_calendars: tuple[tuple[str, WorkingHours], ...] = ()

    def sla_calendar(self, queue: str | None) -> WorkingHours | None:
        calendars = dict(self.sla_calendars)
        return calendars.get(queue or "*", calendars.get("*"))

    def __post_init__(self) -> None:
        for name in ("recent_touch_days", "closed_opportunity_days", "transfer_credit_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        unknown = set(self.rule_order) - set(DEFAULT_RULE_ORDER)
        if unknown or len(set(self.rule_order)) != len(self.rule_order):
            raise ValueError(
                f"rule_order must list distinct rules among {DEFAULT_RULE_ORDER}, "
                f"got {self.rule_order}"
            )

    def is_high_priority(self, form_type: str | None) -> bool:
        return (form_type or "").strip().lower() in self.high_priority_form_types


def inbound_queue(region: Region) -> str:
    return f"inbound-{region}"


@dataclass(frozen=True)
class Lead:
    lead_id: str
    email: str
    occurred_at: datetime  # when the lead was created: every rule is decided at this time
    country: str | None = None
    form_type: str | None = None
    is_consultant: bool = False
    state: str | None = None
    employees: int | None = None
    segment: str | None = None

    @property
    def fields(self) -> LeadFields:
        return LeadFields(self.country, self.state, self.employees, self.segment, self.form_type)


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str = ""
    region: Region | None = None
    owner_id: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.account_id


@dataclass(frozen=True)
class Touch:
    """An email, call or meeting by a rep on the lead, a contact with its email, or the
    account; the caller passes the ones that concern this lead."""

    rep_id: str
    at: datetime
    on: TouchTarget
    subject: str = ""  # for the reason: the contact's email, the account's name...


@dataclass(frozen=True)
class Opportunity:
    opportunity_id: str
    account_id: str
    owner_id: str | None
    is_closed: bool = False
    created_at: datetime | None = None
    closed_on: date | None = None


@dataclass(frozen=True)
class QueueSnapshot:
    """A rotation as loaded (and locked) by the caller: members in place order and the
    pointer."""

    name: str
    members: tuple[Member, ...]
    state: RotationState = field(default_factory=RotationState)
    assigned_today: Mapping[str, int] = field(default_factory=dict)


DEFAULT_TERRITORIES = default_policy()


@dataclass(frozen=True)
class RoutingContext:
    reps: Mapping[str, Rep]
    account: Account | None = None
    touches: Sequence[Touch] = ()
    opportunities: Sequence[Opportunity] = ()
    queue: QueueSnapshot | None = None  # the region's queue; needed only for round robin
    territories: TerritoryPolicy = DEFAULT_TERRITORIES


@dataclass(frozen=True)
class Decision:
    rule: RuleName
    owner_id: str | None
    owner_role: Role | None
    queue: str | None
    priority: Priority
    reason: str
    region: Region | None = None
    # An open opportunity's AE and the SDR decide together who works the lead.
    review_with_sdr_id: str | None = None
    turn: Turn | None = None  # set when the rotation was used: the slot and the new state
    # A high-priority lead nobody took: who must hear that it waits (``waiting_notice``).
    notify_waiting: tuple[str, ...] = ()
    # The territory that placed the lead (None: none matched) and the policy's version.
    territory: str | None = None
    policy_version: int | None = None
    # The reps the SLA escalation took the lead from so far, in order.
    escalated_from: tuple[str, ...] = ()


def members_of(reps: Sequence[Rep], role: Role) -> tuple[Member, ...]:
    """A rotation's members from its reps in rotation order, unavailable ones included so
    they keep their place."""
    return tuple(
        Member(rep.id, rep.weight, rep.in_rotation(role), rep.daily_cap, rep.position or None)
        for rep in reps
        if not rep.consultant  # consultants are never in a rotation, not even as a place
    )


def members_on_shift(
    members: tuple[Member, ...], reps: Mapping[str, Rep], at: datetime
) -> tuple[Member, ...]:
    """The rotation's members as they are at ``at``: a rep off shift is passed over and
    keeps their place, like a pause (and the rotation's order is unchanged)."""
    off = {m.rep_id for m in members if m.available and not _on_shift(reps.get(m.rep_id), at)}
    if not off:
        return members
    return tuple(replace(m, available=False) if m.rep_id in off else m for m in members)


def _on_shift(rep: Rep | None, at: datetime) -> bool:
    return rep is None or on_shift(rep.hours, at)


def placement_of_lead(
    lead: Lead, account: Account | None, policy: RoutingPolicy, territories: TerritoryPolicy
) -> Placement:
    """The first territory of the policy that matches the lead; else the account's region,
    the policy's fallback region, then the configuration's."""
    placed = place_lead(territories, lead.fields, account.region if account else None)
    if placed.region is None and policy.fallback_region is not None:
        return replace(placed, region=policy.fallback_region)
    return placed


def queue_of_lead(
    lead: Lead, account: Account | None, policy: RoutingPolicy, territories: TerritoryPolicy
) -> str | None:
    """The rotation a lead would use, so the caller can lock and load it beforehand."""
    if lead.is_consultant:
        return None
    return placement_of_lead(lead, account, policy, territories).queue


WAITING_QUEUES = frozenset({UNASSIGNED_QUEUE, MANUAL_REVIEW_QUEUE})


def waiting_notice(decision: Decision, policy: RoutingPolicy) -> tuple[str, ...]:
    """Who is told that a high-priority lead was left waiting (nobody, when it was not)."""
    if decision.priority != "high" or decision.owner_id is not None:
        return ()
    if decision.queue not in WAITING_QUEUES:
        return ()
    return policy.waiting_lead_recipients or (decision.queue,)


def route_lead(lead: Lead, context: RoutingContext, policy: RoutingPolicy) -> Decision:
    placed = placement_of_lead(lead, context.account, policy, context.territories)
    decision = _route_lead(lead, context, policy, placed.region)
    return replace(
        decision,
        notify_waiting=waiting_notice(decision, policy),
        territory=placed.territory,
        policy_version=placed.policy_version,
    )


def _route_lead(
    lead: Lead, context: RoutingContext, policy: RoutingPolicy, region: Region | None
) -> Decision:
    priority: Priority = "high" if policy.is_high_priority(lead.form_type) else "normal"
    if lead.is_consultant:
        return Decision(
            "manual_review",
            None,
            None,
            MANUAL_REVIEW_QUEUE,
            priority,
            "Consultant lead: reviewed by hand, never in the round robin",
            region,
        )
    for rule in policy.rule_order:
        decision = _apply(rule, lead, context, policy, priority, region)
        if decision is not None:
            return decision
    return Decision(
        "unassigned", None, None, UNASSIGNED_QUEUE, priority, "No rule assigned the lead", region
    )


def _apply(
    rule: OrderedRule,
    lead: Lead,
    context: RoutingContext,
    policy: RoutingPolicy,
    priority: Priority,
    region: Region | None,
) -> Decision | None:
    if rule == "recent_touch":
        return _recent_touch(lead, context, policy, priority, region)
    if rule == "open_opportunity":
        return _open_opportunity(context, priority, region)
    return _round_robin(lead, context, priority, region)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TARGET_ORDER: dict[TouchTarget, int] = {"account": 0, "contact": 1, "lead": 2}


def latest_sdr_touch(
    touches: Sequence[Touch], reps: Mapping[str, Rep], as_of: datetime, days: int
) -> tuple[Touch, Rep] | None:
    """The latest touch by an SDR who can still claim leads, within ``days`` of ``as_of``.

    Ties on the same instant go to the touch closest to the person (lead, then contact,
    then account), then to the larger rep id, so the answer never depends on row order.
    """
    best: tuple[Touch, Rep] | None = None
    for touch in touches:
        rep = reps.get(touch.rep_id)
        if rep is None or rep.role != "SDR" or not rep.may_claim():
            continue
        if not within_days(touch.at, as_of, days):
            continue
        if best is None or _touch_key(touch) > _touch_key(best[0]):
            best = (touch, rep)
    return best


def _touch_key(touch: Touch) -> tuple[datetime, int, str]:
    return (touch.at, _TARGET_ORDER[touch.on], touch.rep_id)


def _recent_touch(
    lead: Lead,
    context: RoutingContext,
    policy: RoutingPolicy,
    priority: Priority,
    region: Region | None,
) -> Decision | None:
    found = latest_sdr_touch(
        context.touches, context.reps, lead.occurred_at, policy.recent_touch_days
    )
    if found is None:
        return None
    touch, rep = found
    account_label = context.account.label if context.account else "?"
    what = {
        "lead": "this lead",
        "contact": f"contact {touch.subject or lead.email}",
        "account": f"account {touch.subject or account_label}",
    }[touch.on]
    reason = f"{rep.label} touched {what} on {utc_day(touch.at).isoformat()}"
    return Decision("recent_touch", rep.id, rep.role, None, priority, reason, region)


def _open_opportunity(
    context: RoutingContext, priority: Priority, region: Region | None
) -> Decision | None:
    account = context.account
    if account is None:
        return None
    candidates: list[tuple[Opportunity, Rep]] = []
    for opp in context.opportunities:
        owner = context.reps.get(opp.owner_id) if opp.owner_id else None
        if owner is None or not owner.may_claim():
            continue
        if opp.account_id == account.account_id and not opp.is_closed:
            candidates.append((opp, owner))
    if not candidates:
        return None
    # The newest open opportunity speaks for the account; its id breaks ties.
    opp, owner = max(candidates, key=lambda c: (c[0].created_at or _EPOCH, c[0].opportunity_id))
    reason = (
        f"{account.label} has open opportunity {opp.opportunity_id} of {owner.label}; "
        "AE and SDR decide together"
    )
    return Decision(
        "open_opportunity",
        owner.id,
        owner.role,
        None,
        priority,
        reason,
        region,
        review_with_sdr_id=owner.paired_sdr_id,
    )


def _round_robin(
    lead: Lead, context: RoutingContext, priority: Priority, region: Region | None
) -> Decision | None:
    if region is None:
        return Decision(
            "unassigned",
            None,
            None,
            UNASSIGNED_QUEUE,
            priority,
            f"No region for country {lead.country!r}",
            None,
        )
    name = inbound_queue(region)
    queue = context.queue
    if queue is None or queue.name != name:
        raise ValueError(f"round robin needs the snapshot of queue {name!r}; got {queue!r}")
    members = members_on_shift(queue.members, context.reps, lead.occurred_at)
    turn = next_turn(members, queue.state, queue.assigned_today)
    if turn is None:
        return Decision(
            "unassigned",
            None,
            None,
            UNASSIGNED_QUEUE,
            priority,
            f"Nobody eligible in {name}" + (" on shift" if members is not queue.members else ""),
            region,
        )
    rep = context.reps.get(turn.rep_id)
    label = rep.label if rep is not None else f"SDR {turn.rep_id}"
    return Decision(
        "round_robin",
        turn.rep_id,
        rep.role if rep is not None else "SDR",
        name,
        priority,
        f"Round robin of {name}: turn {turn.slot} to {label}",
        region,
        turn=turn,
    )
