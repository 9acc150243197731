from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from revops.router.domain.reps import Rep
from revops.router.domain.rotation import RotationState
from revops.router.domain.rules import (
    DEFAULT_TERRITORIES,
    Account,
    Lead,
    Opportunity,
    QueueSnapshot,
    RoutingContext,
    RoutingPolicy,
    Touch,
    TouchTarget,
    members_of,
    queue_of_lead,
    route_lead,
)

T0 = datetime(2026, 4, 1, 15, 0, tzinfo=UTC)
POLICY = RoutingPolicy()

SDR_A = Rep("005A", "SDR", "AMER", certified=True)
SDR_B = Rep("005B", "SDR", "AMER", certified=True)
SDR_C = Rep("005C", "SDR", "AMER", certified=True, weight=2)
AE_X = Rep("005X", "AE", "AMER", certified=True, paired_sdr_id="005A")
REPS = {r.id: r for r in (SDR_A, SDR_B, SDR_C, AE_X)}
ACME = Account("001ACME", "Acme", "AMER", owner_id="005X")


def queue(
    state: RotationState | None = None,
    reps: Sequence[Rep] = (SDR_A, SDR_B, SDR_C),
    name: str = "inbound-AMER",
    today: dict[str, int] | None = None,
) -> QueueSnapshot:
    return QueueSnapshot(name, members_of(list(reps), "SDR"), state or RotationState(), today or {})


def lead(**kw: Any) -> Lead:
    base: dict[str, Any] = dict(lead_id="00QL", email="jane@acme.com", occurred_at=T0, country="US")
    base.update(kw)
    return Lead(**base)


def ctx(**kw: Any) -> RoutingContext:
    base: dict[str, Any] = dict(reps=REPS, account=ACME, queue=queue())
    base.update(kw)
    return RoutingContext(**base)


def touch(rep: str = "005B", days: int = 0, on: TouchTarget = "account", hours: int = 0) -> Touch:
    return Touch(rep, T0 - timedelta(days=days, hours=hours), on)


# --- recent touch -----------------------------------------------------------------------


def test_touch_30_days_before_routes_to_the_sdr():
    d = route_lead(lead(), ctx(touches=[touch(days=30)]), POLICY)
    assert (d.rule, d.owner_id, d.owner_role, d.turn) == ("recent_touch", "005B", "SDR", None)
    assert d.reason == "SDR 005B touched account Acme on 2026-03-02"


def test_touch_31_days_before_does_not_count():
    d = route_lead(lead(), ctx(touches=[touch(days=31)]), POLICY)
    assert d.rule == "round_robin"


def test_window_counts_calendar_days_late_evening_touch_30_days_before():
    late = Touch("005B", datetime(2026, 3, 2, 23, 59, tzinfo=UTC), "account")
    early_lead = lead(occurred_at=datetime(2026, 4, 1, 0, 1, tzinfo=UTC))
    assert route_lead(early_lead, ctx(touches=[late]), POLICY).rule == "recent_touch"
    before = Touch("005B", datetime(2026, 3, 1, 23, 59, tzinfo=UTC), "account")
    assert route_lead(early_lead, ctx(touches=[before]), POLICY).rule == "round_robin"


def test_touch_after_the_lead_is_ignored_so_replays_agree():
    future = Touch("005B", T0 + timedelta(minutes=1), "lead")
    assert route_lead(lead(), ctx(touches=[future]), POLICY).rule == "round_robin"


@pytest.mark.parametrize(
    ("on", "what"), [("lead", "this lead"), ("contact", "contact jane@acme.com")]
)
def test_touch_on_lead_or_contact_counts(on, what):
    d = route_lead(lead(), ctx(touches=[touch(days=3, on=on)]), POLICY)
    assert (d.rule, d.owner_id) == ("recent_touch", "005B")
    assert what in d.reason


def test_latest_touch_wins():
    touches = [touch("005A", days=10), touch("005B", days=2), touch("005C", days=20)]
    assert route_lead(lead(), ctx(touches=touches), POLICY).owner_id == "005B"


def test_touch_by_an_ae_or_unknown_or_inactive_rep_gives_no_claim():
    inactive = Rep("005Z", "SDR", "AMER", active=False)
    reps = {**REPS, "005Z": inactive}
    touches = [touch("005X", days=1), touch("005Q", days=1), touch("005Z", days=1)]
    d = route_lead(lead(), ctx(reps=reps, touches=touches), POLICY)
    assert d.rule == "round_robin"
    assert d.owner_id not in {"005X", "005Q", "005Z"}


def test_recent_touch_window_is_configurable():
    policy = RoutingPolicy(recent_touch_days=7)
    assert route_lead(lead(), ctx(touches=[touch(days=7)]), policy).rule == "recent_touch"
    assert route_lead(lead(), ctx(touches=[touch(days=8)]), policy).rule == "round_robin"


# --- open opportunity -------------------------------------------------------------------


def opp(
    owner: str | None = "005X", closed: bool = False, oid: str = "006A", created_days: int = 5
) -> Opportunity:
    return Opportunity(oid, "001ACME", owner, closed, T0 - timedelta(days=created_days))


def test_open_opportunity_goes_to_its_ae_flagged_with_the_sdr():
    d = route_lead(lead(), ctx(opportunities=[opp()]), POLICY)
    assert (d.rule, d.owner_id, d.owner_role) == ("open_opportunity", "005X", "AE")
    assert d.review_with_sdr_id == "005A"
    assert "006A" in d.reason and "Acme" in d.reason
    assert d.turn is None


def test_closed_opportunity_gives_no_claim_on_an_inbound_lead():
    d = route_lead(lead(), ctx(opportunities=[opp(closed=True)]), POLICY)
    assert d.rule == "round_robin"


def test_newest_open_opportunity_speaks_for_the_account():
    other_ae = Rep("005Y", "AE", "AMER")
    reps = {**REPS, "005Y": other_ae}
    opps = [opp("005X", oid="006A", created_days=9), opp("005Y", oid="006B", created_days=1)]
    assert route_lead(lead(), ctx(reps=reps, opportunities=opps), POLICY).owner_id == "005Y"


def test_recent_touch_beats_open_opportunity_by_default():
    d = route_lead(lead(), ctx(touches=[touch(days=1)], opportunities=[opp()]), POLICY)
    assert d.rule == "recent_touch"


def test_rule_order_is_configurable():
    policy = RoutingPolicy(rule_order=("open_opportunity", "recent_touch", "round_robin"))
    d = route_lead(lead(), ctx(touches=[touch(days=1)], opportunities=[opp()]), policy)
    assert d.rule == "open_opportunity"


def test_rule_order_rejects_unknown_rules():
    with pytest.raises(ValueError, match="rule_order"):
        RoutingPolicy(rule_order=("recent_touch", "coin_flip"))  # type: ignore[arg-type]


def test_owning_the_account_alone_gives_no_claim():
    d = route_lead(lead(), ctx(account=ACME), POLICY)
    assert d.rule == "round_robin"
    assert d.owner_id != "005X"


# --- round robin ------------------------------------------------------------------------


def test_round_robin_of_the_region_queue_takes_a_turn():
    # B (place 1) had the last turn, slot 1: C comes next, in slot 2.
    d = route_lead(lead(), ctx(queue=queue(RotationState(2, 0, 1))), POLICY)
    assert (d.rule, d.owner_id, d.queue) == ("round_robin", "005C", "inbound-AMER")
    assert d.turn is not None and (d.turn.slot, d.turn.cursor) == (2, 3)
    assert d.reason == "Round robin of inbound-AMER: turn 2 to SDR 005C"


def test_region_comes_from_country_then_account():
    emea_q = queue(name="inbound-EMEA", reps=[Rep("005E", "SDR", "EMEA", certified=True)])
    d = route_lead(lead(country="Deutschland"), ctx(queue=emea_q), POLICY)
    assert (d.queue, d.owner_id, d.region) == ("inbound-EMEA", "005E", "EMEA")
    d = route_lead(lead(country=None), ctx(), POLICY)
    assert d.queue == "inbound-AMER"


def test_no_region_is_unassigned_with_reason():
    d = route_lead(lead(country="Narnia"), ctx(account=None, queue=None), POLICY)
    assert (d.rule, d.queue, d.owner_id) == ("unassigned", "unassigned", None)
    assert "Narnia" in d.reason


def test_fallback_region_from_policy():
    policy = RoutingPolicy(fallback_region="AMER")
    d = route_lead(lead(country="Narnia"), ctx(account=None), policy)
    assert d.rule == "round_robin"


def test_empty_queue_puts_lead_in_unassigned():
    paused = Rep("005A", "SDR", "AMER", certified=True, paused=True)
    uncertified = Rep("005B", "SDR", "AMER")
    d = route_lead(lead(), ctx(queue=queue(reps=[paused, uncertified])), POLICY)
    assert (d.rule, d.queue, d.owner_id, d.turn) == ("unassigned", "unassigned", None, None)
    assert "inbound-AMER" in d.reason


def test_round_robin_without_the_right_queue_snapshot_is_a_bug():
    with pytest.raises(ValueError, match="inbound-AMER"):
        route_lead(lead(), ctx(queue=None), POLICY)


def test_consultant_reps_are_never_in_a_rotation():
    consultant = Rep("005K", "SDR", "AMER", certified=True, consultant=True)
    assert [m.rep_id for m in members_of([SDR_A, consultant], "SDR")] == ["005A"]


def test_without_round_robin_in_order_leads_are_unassigned():
    policy = RoutingPolicy(rule_order=("recent_touch",))
    d = route_lead(lead(), ctx(), policy)
    assert (d.rule, d.queue) == ("unassigned", "unassigned")


# --- consultants and priority -----------------------------------------------------------


def test_consultant_lead_goes_to_manual_review_whatever_the_touches():
    d = route_lead(lead(is_consultant=True), ctx(touches=[touch(days=1)], queue=None), POLICY)
    assert (d.rule, d.queue, d.owner_id, d.turn) == ("manual_review", "manual_review", None, None)
    assert queue_of_lead(lead(is_consultant=True), ACME, POLICY, DEFAULT_TERRITORIES) is None


@pytest.mark.parametrize(
    ("form_type", "priority"),
    [("demo_request", "high"), ("Contact", "high"), ("ebook", "normal"), (None, "normal")],
)
def test_demo_and_contact_forms_are_high_priority(form_type, priority):
    assert route_lead(lead(form_type=form_type), ctx(), POLICY).priority == priority


def test_queue_of_lead_names_the_region_queue():
    assert queue_of_lead(lead(country="JP"), None, POLICY, DEFAULT_TERRITORIES) == "inbound-APAC"
    assert queue_of_lead(lead(country=None), None, POLICY, DEFAULT_TERRITORIES) is None


def test_same_inputs_same_decision():
    c = ctx(touches=[touch(days=3), touch("005A", days=3)], opportunities=[opp()])
    assert route_lead(lead(), c, POLICY) == route_lead(lead(), c, POLICY)
