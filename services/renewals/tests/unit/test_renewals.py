from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from revops.renewals.domain.renewals import (
    ExistingRenewal,
    RenewalPolicy,
    RenewalStatus,
    WonOpportunity,
    add_months,
    decide_renewal,
    is_renewable,
    plan_renewal,
    renewal_id_for,
)

POLICY = RenewalPolicy()


def won(**kw: Any) -> WonOpportunity:
    base = dict(
        opportunity_id="006A",
        won_on=date(2026, 3, 20),
        account_id="001A",
        owner_id="005U",
        amount=Decimal("12000"),
        close_date=date(2026, 3, 20),
        opportunity_type="New Business",
        name="Acme",
    )
    return WonOpportunity(**{**base, **kw})


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2028, 2, 29), 48, date(2032, 2, 29)),
        (date(2026, 4, 30), 1, date(2026, 5, 30)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 3, 20), 12, date(2027, 3, 20)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 5, 31), -3, date(2026, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_last_day(start, months, expected):
    assert add_months(start, months) == expected


def test_contract_end_date_is_the_renewal_close_date():
    plan = plan_renewal(won(contract_end_date=date(2027, 6, 30)), POLICY)
    assert plan.close_date == date(2027, 6, 30)


def test_without_contract_end_close_date_plus_the_term():
    assert plan_renewal(won(), POLICY).close_date == date(2027, 3, 20)
    two_years = RenewalPolicy(term_months=24)
    assert plan_renewal(won(close_date=date(2028, 2, 29)), two_years).close_date == date(
        2030, 2, 28
    )


def test_without_contract_end_or_close_date_the_day_won_plus_the_term():
    plan = plan_renewal(won(close_date=None, won_on=date(2028, 2, 29)), POLICY)
    assert plan.close_date == date(2029, 2, 28)


def test_same_account_owner_and_renewals_pipeline():
    plan = plan_renewal(won(), POLICY)
    assert (plan.account_id, plan.owner_id, plan.pipeline, plan.opportunity_type) == (
        "001A",
        "005U",
        "Renewals",
        "Renewal",
    )
    assert plan.source_opportunity_id == "006A"


def test_amount_with_and_without_uplift():
    assert plan_renewal(won(), POLICY).amount == Decimal("12000.00")
    uplift = RenewalPolicy(uplift_percent=Decimal("7"))
    assert plan_renewal(won(amount=Decimal("999.99")), uplift).amount == Decimal("1069.99")
    assert plan_renewal(won(amount=None), uplift).amount is None


def test_renewal_id_is_derived_from_the_won_opportunity_only():
    assert (
        renewal_id_for("006A") == renewal_id_for("006A") == plan_renewal(won(), POLICY).renewal_id
    )
    assert renewal_id_for("006A") != renewal_id_for("006B")
    assert plan_renewal(won(amount=Decimal(1)), POLICY).renewal_id == renewal_id_for("006A")


@pytest.mark.parametrize(
    ("type_", "pipeline", "expected"),
    [
        ("New Business", None, True),
        ("new business", "Sales", True),
        ("Renewal", None, True),
        (None, None, True),
        ("Expansion", None, False),
        ("Expansion", "Renewals", True),
    ],
)
def test_which_wins_renew(type_, pipeline, expected):
    assert is_renewable(type_, pipeline, POLICY) is expected


def existing(
    status: RenewalStatus, amount: Decimal = Decimal("12000.00"), close: date = date(2027, 3, 20)
) -> ExistingRenewal:
    return ExistingRenewal(renewal_id_for("006A"), status, amount, close)


def test_first_closed_won_creates():
    decision = decide_renewal(won(), None, POLICY)
    assert decision.action == "create" and decision.plan is not None


def test_closed_won_again_keeps_the_one_renewal():
    assert decide_renewal(won(), existing(RenewalStatus.OPEN), POLICY).action == "keep"


def test_leaving_closed_won_cancels_the_open_renewal():
    assert decide_renewal(None, existing(RenewalStatus.OPEN), POLICY).action == "cancel"


def test_leaving_closed_won_twice_cancels_once():
    assert decide_renewal(None, existing(RenewalStatus.CANCELLED), POLICY).action == "keep"
    assert decide_renewal(None, None, POLICY).action == "keep"


def test_won_again_after_a_reopen_reinstates_the_same_renewal():
    decision = decide_renewal(won(), existing(RenewalStatus.CANCELLED), POLICY)
    assert decision.action == "reinstate"
    assert decision.plan is not None and decision.plan.renewal_id == renewal_id_for("006A")


def test_a_renewal_already_won_or_lost_is_left_alone():
    assert decide_renewal(None, existing(RenewalStatus.WON), POLICY).action == "keep"
    assert decide_renewal(won(), existing(RenewalStatus.LOST), POLICY).action == "keep"


def test_a_later_contract_end_moves_the_open_renewal():
    decision = decide_renewal(
        won(contract_end_date=date(2027, 5, 31)), existing(RenewalStatus.OPEN), POLICY
    )
    assert decision.action == "update"
    assert decision.plan is not None and decision.plan.close_date == date(2027, 5, 31)


def test_a_won_renewal_chains_to_the_next():
    first = plan_renewal(won(), POLICY)
    renewal_won = won(
        opportunity_id="006R1",
        opportunity_type=first.opportunity_type,
        pipeline=first.pipeline,
        close_date=first.close_date,
        amount=first.amount,
    )
    nxt = plan_renewal(renewal_won, POLICY)
    assert nxt.close_date == date(2028, 3, 20)
    assert nxt.renewal_id == renewal_id_for("006R1") != first.renewal_id
