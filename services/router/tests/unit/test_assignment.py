from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from revops.router.domain.assignment import AeAssignment, assign_ae
from revops.router.domain.reps import Rep
from revops.router.domain.rotation import RotationState
from revops.router.domain.rules import (
    Account,
    Opportunity,
    QueueSnapshot,
    RoutingPolicy,
    Touch,
    members_of,
)

T0 = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
POLICY = RoutingPolicy()
SDR = Rep("005S", "SDR", "EMEA", certified=True)
AE_PAIR = Rep("005P", "AE", "EMEA", certified=True, paired_sdr_id="005S")
AE_CLOSER = Rep("005C", "AE", "EMEA", certified=True)
AE_RR1 = Rep("005R", "AE", "EMEA", certified=True)
AE_UNCERT = Rep("005U", "AE", "EMEA", certified=False)
REPS = {r.id: r for r in (SDR, AE_PAIR, AE_CLOSER, AE_RR1, AE_UNCERT)}
ACC = Account("001", "Initech", "EMEA")
START = RotationState()


def ae_queue(state: RotationState = START) -> QueueSnapshot:
    return QueueSnapshot("ae-EMEA", members_of([AE_UNCERT, AE_RR1, AE_CLOSER], "AE"), state)


def closed(days: int, owner: str = "005C", oid: str = "006") -> Opportunity:
    return Opportunity(oid, "001", owner, True, None, (T0 - timedelta(days=days)).date())


def assign(
    touches: Sequence[Touch] = (),
    opps: Sequence[Opportunity] = (),
    queue: QueueSnapshot | None = None,
    reps: Mapping[str, Rep] = REPS,
) -> AeAssignment:
    return assign_ae(ACC, T0, reps, list(touches), list(opps), queue or ae_queue(), POLICY)


def test_sdr_of_a_pair_touching_within_30_days_gives_the_pair_ae():
    a = assign([Touch("005S", T0 - timedelta(days=30), "account")], [closed(1)])
    assert (a.rule, a.ae_id) == ("pair_touch", "005P")
    assert "SDR 005S" in a.reason and "Initech" in a.reason


def test_pair_touch_31_days_ago_does_not_count():
    a = assign([Touch("005S", T0 - timedelta(days=31), "account")], [closed(1)])
    assert (a.rule, a.ae_id) == ("closed_opportunity", "005C")


def test_ae_touching_themself_counts():
    a = assign([Touch("005P", T0 - timedelta(days=2), "contact")])
    assert (a.rule, a.ae_id) == ("pair_touch", "005P")


def test_unpaired_sdr_touch_gives_no_pair():
    lone = Rep("005L", "SDR", "EMEA")
    a = assign([Touch("005L", T0 - timedelta(days=1), "account")], reps={**REPS, "005L": lone})
    assert a.rule == "round_robin"


def test_closed_opportunity_90_days_ago_counts_91_does_not():
    assert assign(opps=[closed(90)]).ae_id == "005C"
    a = assign(opps=[closed(91)])
    assert a.rule == "round_robin"


def test_most_recently_closed_wins():
    a = assign(opps=[closed(50, "005C", "006A"), closed(10, "005R", "006B")])
    assert (a.ae_id, a.reason) == (
        "005R",
        "AE 005R closed opportunity 006B on Initech on 2026-06-20",
    )


def test_open_or_other_account_opportunities_do_not_count():
    open_opp = Opportunity("006O", "001", "005C", False, None, None)
    elsewhere = Opportunity("006E", "999", "005C", True, None, date(2026, 6, 29))
    assert assign(opps=[open_opp, elsewhere]).rule == "round_robin"


def test_round_robin_over_certified_aes_only():
    a = assign(queue=ae_queue())
    assert (a.rule, a.ae_id, a.queue) == ("round_robin", "005R", "ae-EMEA")
    assert a.turn is not None
    b = assign(queue=ae_queue(a.turn.after))
    assert b.ae_id == "005C"
    assert b.turn is not None
    c = assign(queue=ae_queue(b.turn.after))
    assert c.ae_id == "005R"  # the uncertified AE keeps a place but never takes it


def test_no_eligible_ae_is_unassigned():
    empty = QueueSnapshot("ae-EMEA", members_of([AE_UNCERT], "AE"), START)
    a = assign(queue=empty)
    assert (a.rule, a.ae_id) == ("unassigned", None)
