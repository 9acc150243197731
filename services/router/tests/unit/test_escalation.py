"""SLA escalation's decision at its edges: the instant the owner's first-touch time runs
out, counted on a business-hours calendar; the next rep of the rotation, never one who
lost the lead; the number of reassignments; the manager; and what the policy document
accepts."""

from datetime import UTC, datetime, timedelta

import pytest

from revops.router.domain.escalation import (
    Escalation,
    OwnedLead,
    escalation_of,
    escalation_reason,
)
from revops.router.domain.reps import Rep
from revops.router.domain.rotation import RotationState
from revops.router.domain.rules import QueueSnapshot, members_of
from revops.router.domain.territories import EscalationRule, InvalidPolicy
from revops.router.domain.working_hours import Shift, WorkingHours
from revops.router.policy_document import parse_policy

QUEUE = "inbound-EMEA"
TARGET = timedelta(minutes=5)
SECOND = timedelta(seconds=1)
# Thursday 2026-12-03, 10:00 UTC.
ARRIVED = datetime(2026, 12, 3, 10, tzinfo=UTC)
DUE = ARRIVED + TARGET
REPS = [Rep(r, "SDR", "EMEA", certified=True, position=i + 1) for i, r in enumerate("ABCD")]
MANAGER = Rep("M", "SDR", "EMEA", position=9)  # not certified: never in the rotation


def reps(*extra: Rep, paused: str = "") -> dict[str, Rep]:
    known = [
        Rep(r.id, r.role, r.region, certified=True, paused=r.id in paused, position=r.position)
        for r in REPS
    ]
    return {r.id: r for r in (*known, MANAGER, *extra)}


def queue(
    known: dict[str, Rep], after: int = 1, caps: dict[str, int] | None = None
) -> QueueSnapshot:
    """The queue after A's turn (place 1): B is next."""
    ordered = sorted(known.values(), key=lambda r: r.position)
    members = members_of([r for r in ordered if r.region == "EMEA"], "SDR")
    return QueueSnapshot(QUEUE, members, RotationState(7, 0, after), caps or {})


def lead(
    owner: str = "A",
    lost: tuple[str, ...] = (),
    since: datetime = ARRIVED,
    first_touch_at: datetime | None = None,
) -> OwnedLead:
    return OwnedLead("L1", owner, QUEUE, since, first_touch_at, escalated_from=lost)


RULE = EscalationRule(QUEUE, reassign=2, manager_id="M")


def decide(
    owned: OwnedLead,
    now: datetime,
    rule: EscalationRule | None = RULE,
    *,
    known: dict[str, Rep] | None = None,
    snapshot: QueueSnapshot | None = None,
    calendar: WorkingHours | None = None,
) -> Escalation | None:
    known = reps() if known is None else known
    snapshot = queue(known) if snapshot is None else snapshot
    return escalation_of(owned, rule, snapshot, known, calendar, TARGET, now)


def test_exactly_at_the_due_instant_is_in_time_and_a_second_later_is_not() -> None:
    assert decide(lead(), DUE) is None
    e = decide(lead(), DUE + SECOND)
    assert e is not None
    assert (e.kind, e.from_rep_id, e.to_rep_id, e.due) == ("reassigned", "A", "B", DUE)
    assert e.turn is not None and (e.turn.slot, e.turn.after.after) == (7, 2)
    assert e.escalated_from == ("A",)


def test_a_touch_by_then_stops_it_and_a_touch_after_then_does_not() -> None:
    assert decide(lead(first_touch_at=DUE), DUE + SECOND) is None
    assert decide(lead(first_touch_at=DUE + 2 * SECOND), DUE + SECOND) is not None


def test_the_new_owner_gets_the_whole_target_from_when_they_got_the_lead() -> None:
    since = ARRIVED + timedelta(hours=1)
    assert decide(lead("B", ("A",), since=since), since + TARGET) is None
    e = decide(lead("B", ("A",), since=since), since + TARGET + SECOND)
    assert e is not None and (e.to_rep_id, e.escalated_from) == ("C", ("A", "B"))


def test_a_rep_who_lost_the_lead_is_passed_over_and_keeps_their_place() -> None:
    # The pointer is after D (place 4): the rotation would start again at A, who lost
    # the lead, and at B, who owns it; C takes it.
    e = decide(lead("B", ("A",)), DUE + SECOND, snapshot=queue(reps(), after=4))
    assert e is not None and e.to_rep_id == "C"
    assert e.turn is not None and e.turn.after.after == 3


def test_paused_reps_and_reps_at_their_cap_are_passed_over() -> None:
    known = reps(paused="B")
    e = decide(lead(), DUE + SECOND, known=known, snapshot=queue(known, caps={"C": 0}))
    assert e is not None and e.to_rep_id == "C"
    capped = {
        r.id: r
        for r in (
            *[
                Rep(r.id, "SDR", "EMEA", certified=True, daily_cap=1, position=r.position)
                for r in REPS
            ],
            MANAGER,
        )
    }
    e = decide(lead(), DUE + SECOND, known=capped, snapshot=queue(capped, caps={"B": 1, "C": 1}))
    assert e is not None and e.to_rep_id == "D"


def test_after_the_last_reassignment_the_manager_takes_the_lead() -> None:
    e = decide(lead("C", ("A", "B")), DUE + SECOND)
    assert e is not None
    assert (e.kind, e.to_rep_id, e.turn, e.escalated_from) == (
        "manager",
        "M",
        None,
        ("A", "B", "C"),
    )
    assert decide(lead("M", ("A", "B", "C")), DUE + timedelta(days=3)) is None


def test_nobody_else_eligible_goes_to_the_manager_or_stays() -> None:
    known = reps(paused="BCD")
    e = decide(lead(), DUE + SECOND, known=known)
    assert e is not None and (e.kind, e.to_rep_id) == ("manager", "M")
    assert decide(lead(), DUE + SECOND, EscalationRule(QUEUE, reassign=2), known=known) is None


def test_without_reassignments_the_manager_takes_it_at_once() -> None:
    e = decide(lead(), DUE + SECOND, EscalationRule(QUEUE, manager_id="M"))
    assert e is not None and (e.kind, e.to_rep_id) == ("manager", "M")


def test_a_manager_who_is_no_rep_is_nobody_to_escalate_to() -> None:
    rule = EscalationRule(QUEUE, manager_id="nobody")
    assert decide(lead(), DUE + SECOND, rule) is None


def test_a_queue_without_a_rule_never_escalates() -> None:
    assert decide(lead(), DUE + timedelta(days=30), None) is None
    other = EscalationRule("inbound-AMER", reassign=1)
    assert decide(lead(), DUE + timedelta(days=30), other) is None


def test_on_a_business_hours_calendar_only_open_time_counts() -> None:
    # Berlin 09:00-17:00 Monday to Friday: given at 16:58 on Friday (15:58 UTC), the
    # owner's five minutes run out at 09:03 on Monday (08:03 UTC).
    berlin = WorkingHours(
        "Europe/Berlin", (Shift(frozenset(range(5)), 9 * 60, 17 * 60),), frozenset()
    )
    friday = datetime(2026, 12, 4, 15, 58, tzinfo=UTC)
    monday_due = datetime(2026, 12, 7, 8, 3, tzinfo=UTC)
    owned = lead(since=friday)
    assert decide(owned, datetime(2026, 12, 6, 12, tzinfo=UTC), calendar=berlin) is None
    assert decide(owned, monday_due, calendar=berlin) is None
    e = decide(owned, monday_due + SECOND, calendar=berlin)
    assert e is not None and e.due == monday_due


def test_the_reason_says_who_let_it_pass_and_what_happened() -> None:
    e = decide(lead(), DUE + SECOND)
    assert e is not None
    assert escalation_reason(e, TARGET, QUEUE) == (
        "SLA escalation: A left the 5-minute first touch untouched; "
        "reassignment 1 in inbound-EMEA, turn 7"
    )


def test_a_rule_that_does_nothing_or_reassigns_too_often_is_refused() -> None:
    with pytest.raises(ValueError, match="does nothing"):
        EscalationRule(QUEUE)
    with pytest.raises(ValueError, match="reassign must be 0 to 10"):
        EscalationRule(QUEUE, reassign=11)


POLICY = """territories:
  - name: emea
    region: EMEA
escalation:
  inbound-EMEA:
    reassign: 2
    manager: M
"""


def test_the_policy_document_configures_escalation_per_queue() -> None:
    policy = parse_policy(POLICY, 3)
    assert policy.escalation_of(QUEUE) == RULE
    assert policy.escalation_of("inbound-AMER") is None


def test_a_bad_escalation_is_refused_with_every_error_named() -> None:
    bad = (
        POLICY
        + "  inbound-MARS:\n    reassign: 1\n  inbound-APAC: {}\n  inbound-AMER: {reassign: 11}\n"
    )
    with pytest.raises(InvalidPolicy) as refused:
        parse_policy(bad, 3)
    found = {(e.line, e.field.split(".")[1]) for e in refused.value.errors}
    assert found == {(8, "inbound-MARS"), (10, "inbound-APAC"), (11, "inbound-AMER")}
