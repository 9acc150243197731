from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from revops.renewals.domain.snapshot import (
    OpportunityAsOf,
    Quarter,
    RenewalAsOf,
    RenewalHistory,
    forecast_json,
    periods_for,
    quarter_of,
    renewal_as_of,
    take_snapshot,
)
from revops.renewals.domain.stages import ForecastCategory, StageKind, StageMap

STAGES = StageMap()
AS_OF = datetime(2026, 3, 14, 1, tzinfo=UTC)  # Friday 13 March 18:00 in Los Angeles
PERIODS = periods_for(AS_OF, AS_OF - timedelta(days=7))


def opp(
    id_: str,
    owner: str | None,
    stage: str,
    amount: int | str | None,
    category: ForecastCategory | None = None,
    nbm: datetime | None = None,
    qualified: datetime | None = None,
    closed: datetime | None = None,
    renewal: bool = False,
) -> OpportunityAsOf:
    return OpportunityAsOf(
        id_,
        owner,
        STAGES.parse(stage),
        Decimal(amount) if amount is not None else None,
        category,
        nbm,
        qualified,
        closed,
        renewal,
    )


def test_quarters_calendar_and_fiscal():
    assert quarter_of(date(2026, 3, 31)) == Quarter(date(2026, 1, 1), date(2026, 3, 31))
    assert quarter_of(date(2026, 4, 1)) == Quarter(date(2026, 4, 1), date(2026, 6, 30))
    assert quarter_of(date(2026, 1, 15), fiscal_year_start_month=2) == Quarter(
        date(2025, 11, 1), date(2026, 1, 31)
    )


def test_periods_use_the_company_time_zone():
    # 2026-04-01 03:00 UTC is still 31 March in Los Angeles: Q1, next quarter is Q2.
    p = periods_for(datetime(2026, 4, 1, 3, tzinfo=UTC), AS_OF)
    assert p.quarter_start == datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert p.next_quarter == Quarter(date(2026, 4, 1), date(2026, 6, 30))


def test_open_pipeline_by_category_and_stage_per_owner_and_total():
    rows = [
        opp("1", "a", "1 - Interest", 100, ForecastCategory.PIPELINE),
        opp("2", "a", "2 - Qualified", 200, ForecastCategory.BEST_CASE),
        opp("3", "b", "3 - Proposal", 300, ForecastCategory.COMMIT),
        opp("4", "b", "3 - Proposal", None, None),
    ]
    f = take_snapshot(rows, [], PERIODS)
    assert f.total.open.count == 4 and f.total.open.amount == Decimal(600)
    assert f.total.qualified_pipeline.count == 3 and f.total.qualified_pipeline.amount == Decimal(
        500
    )
    assert f.total.open_by_stage["3 - Proposal"].count == 2
    assert f.total.open_by_category["Pipeline"].count == 2  # no category reads as Pipeline
    assert f.total.open_by_category["Commit"].amount == Decimal(300)
    assert f.by_owner["a"].open.amount == Decimal(300)
    assert f.by_owner["b"].qualified_pipeline.count == 2


def test_nbms_and_qualified_of_the_period_boundaries():
    start, end = PERIODS.period_start, PERIODS.as_of
    rows = [
        opp("1", "a", "1", 0, nbm=start),  # the period is (start, end]
        opp("2", "a", "1", 0, nbm=start + timedelta(seconds=1)),
        opp("3", "a", "2", 0, nbm=end, qualified=end),
        opp("4", "a", "2", 0, nbm=end - timedelta(days=1), qualified=end + timedelta(seconds=1)),
        opp("5", "a", "1", 0, nbm=end, renewal=True),  # renewals are not meetings
    ]
    f = take_snapshot(rows, [], PERIODS)
    assert (f.total.nbms, f.total.qualified) == (3, 1)


def test_won_and_lost_this_quarter():
    q = PERIODS.quarter_start
    rows = [
        opp("1", "a", "Closed Won", 1000, closed=q),
        opp("2", "a", "Closed Won", 500, closed=q - timedelta(seconds=1)),  # last quarter
        opp("3", "b", "Closed Lost", 700, closed=AS_OF),
    ]
    f = take_snapshot(rows, [], PERIODS)
    assert (f.total.won_this_quarter.count, f.total.won_this_quarter.amount) == (1, Decimal(1000))
    assert f.by_owner["b"].lost_this_quarter.amount == Decimal(700)
    assert f.total.open.count == 0


def test_renewals_due_next_quarter_as_of_the_moment():
    made = AS_OF - timedelta(days=30)
    renewals = [
        RenewalAsOf("r1", "a", Decimal(10), date(2026, 4, 1), made),
        RenewalAsOf("r2", "a", Decimal(20), date(2026, 6, 30), made),
        RenewalAsOf("r3", "a", Decimal(40), date(2026, 7, 1), made),  # the quarter after
        RenewalAsOf("r4", "a", Decimal(80), date(2026, 5, 1), AS_OF + timedelta(seconds=1)),
        RenewalAsOf("r5", "a", Decimal(160), date(2026, 5, 1), made, ended_at=AS_OF),
        RenewalAsOf(
            "r6", "a", Decimal(320), date(2026, 5, 1), made, ended_at=AS_OF + timedelta(days=1)
        ),
    ]
    f = take_snapshot([], renewals, PERIODS)
    assert (f.total.renewals_due_next_quarter.count, f.total.renewals_due_next_quarter.amount) == (
        3,
        Decimal(350),
    )


def test_json_keeps_amounts_exact():
    f = take_snapshot([opp("1", "a", "2", "0.10"), opp("2", "a", "2", "0.20")], [], PERIODS)
    doc = forecast_json(f)
    assert doc["total"]["open"] == {"count": 2, "amount": "0.30"}
    assert set(doc["by_owner"]) == {"a"}


def test_a_hundred_thousand_rows_in_one_pass():
    names = [
        "0 - Prospecting",
        "1 - Interest",
        "2 - Qualified",
        "3 - Proposal",
        "Closed Won",
        "Closed Lost",
    ]
    stages = [STAGES.parse(n) for n in names]
    rows = [
        OpportunityAsOf(
            str(i),
            f"u{i % 50}",
            stages[i % 6],
            Decimal(i % 1000),
            None,
            AS_OF - timedelta(hours=i % 400),
            None,
            AS_OF - timedelta(days=i % 90),
        )
        for i in range(100_000)
    ]
    f = take_snapshot(rows, [], PERIODS)
    assert f.total.open.count == sum(1 for i in range(100_000) if i % 6 < 4)
    assert len(f.by_owner) == 50


def test_period_metrics_counts_in_half_open_range_and_cycle_from_qualified():
    from revops.renewals.domain.snapshot import period_metrics

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    rows = [
        opp(
            "1",
            "a",
            "Closed Won",
            100,
            nbm=start,
            qualified=start,
            closed=start + timedelta(days=10),
        ),
        opp(
            "2",
            "a",
            "Closed Won",
            50,
            nbm=start - timedelta(days=40),
            qualified=start - timedelta(days=20),
            closed=end - timedelta(seconds=1),
        ),
        opp("3", "a", "Closed Lost", 70, nbm=end, closed=end),  # end is excluded
        opp("4", "a", "Closed Lost", 30, closed=start),
        opp("5", "a", "2", 10, nbm=start, qualified=start, renewal=True),
    ]
    metrics = period_metrics(rows, start, end)
    assert (metrics.nbms, metrics.qualified) == (1, 1)
    assert (metrics.won.count, metrics.won.amount) == (2, Decimal(150))
    assert (metrics.lost.count, metrics.lost.amount) == (1, Decimal(30))
    assert metrics.cycle_days[0] == 10
    assert round(metrics.cycle_days[1]) == 51
    assert metrics.median_cycle_days == (10 + metrics.cycle_days[1]) / 2


# --- a renewal as of a moment, from the stage history -------------------------------------

WON_AT = AS_OF - timedelta(days=10)


def history(**changes: Any) -> RenewalHistory:
    base = RenewalHistory(
        renewal_id="r",
        owner_id="a",
        amount=Decimal(100),
        close_date=date(2026, 5, 1),
        cancelled_at=None,
        source_kind=StageKind.WON,
        source_since=WON_AT,
    )
    return replace(base, **changes)


def test_a_renewal_is_due_while_the_opportunity_it_renews_stands_won():
    due = renewal_as_of(history(), AS_OF)
    assert due == RenewalAsOf("r", "a", Decimal(100), date(2026, 5, 1), created_at=WON_AT)


@pytest.mark.parametrize(
    ("source_kind", "source_since"),
    [
        (None, None),  # no version of the opportunity yet
        (StageKind.OPEN, WON_AT),  # not won yet, or moved back out of Closed Won since
        (StageKind.LOST, WON_AT),
    ],
)
def test_a_renewal_is_not_due_unless_its_opportunity_stands_won(source_kind, source_since):
    assert renewal_as_of(history(source_kind=source_kind, source_since=source_since), AS_OF) is None


@pytest.mark.parametrize(
    ("own_kind", "due"),
    [(None, True), (StageKind.OPEN, True), (StageKind.WON, False), (StageKind.LOST, False)],
)
def test_a_renewal_whose_own_opportunity_closed_is_no_longer_due(own_kind, due):
    assert (renewal_as_of(history(own_kind=own_kind), AS_OF) is not None) is due


@pytest.mark.parametrize(
    ("cancelled_at", "due"),
    [
        (AS_OF + timedelta(microseconds=1), True),  # cancelled after the moment
        (AS_OF, False),  # cancelled at that very moment: no longer due
        (AS_OF - timedelta(days=1), False),
    ],
)
def test_a_renewal_cancelled_while_its_opportunity_stays_won_ends_then(cancelled_at, due):
    assert (renewal_as_of(history(cancelled_at=cancelled_at), AS_OF) is not None) is due
