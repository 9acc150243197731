from datetime import UTC, datetime, timedelta
from decimal import Decimal

from revops.renewals.domain.pipeline import (
    Milestones,
    OpportunityChange,
    as_of,
    cycle_time,
    fold,
    milestones,
)
from revops.renewals.domain.stages import ForecastCategory, StageKind, StageMap

STAGES = StageMap()
T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def changes(*stages: tuple[int, str], created: int | None = 0) -> list[OpportunityChange]:
    out = []
    for i, (n, stage) in enumerate(stages):
        out.append(
            OpportunityChange(
                at=day(n),
                event_id=f"e{i}",
                stage=stage,
                created_at=day(created) if i == 0 and created is not None else None,
            )
        )
    return out


def marks(*stages: tuple[int, str], created: int | None = 0) -> Milestones:
    return milestones(fold(changes(*stages, created=created), STAGES))


def test_created_at_stage_1_is_an_nbm_at_creation_and_not_qualified():
    m = marks((0, "1 - Interest"))
    assert (m.nbm_at, m.qualified_at) == (day(0), None)


def test_created_at_stage_0_nbm_when_it_reaches_1():
    m = marks((0, "0 - Prospecting"), (3, "1 - Interest"), (9, "2 - Qualified"))
    assert (m.nbm_at, m.qualified_at) == (day(3), day(9))


def test_skipped_stages_count_as_reached():
    m = marks((0, "0 - Prospecting"), (5, "3 - Proposal"))
    assert (m.nbm_at, m.qualified_at) == (day(5), day(5))


def test_reversed_stages_take_nothing_away_and_count_once():
    m = marks((0, "1 - Interest"), (2, "2 - Qualified"), (4, "1 - Interest"), (6, "3 - Proposal"))
    assert (m.nbm_at, m.qualified_at) == (day(0), day(2))


def test_back_to_stage_0_and_forward_again_does_not_move_the_nbm():
    m = marks((0, "1 - Interest"), (1, "0 - Prospecting"), (8, "1 - Interest"))
    assert m.nbm_at == day(0)


def test_stage_0_then_lost_is_neither():
    m = marks((0, "0 - Prospecting"), (3, "Closed Lost"))
    assert (m.nbm_at, m.qualified_at) == (None, None)


def test_won_straight_from_stage_0_is_an_nbm_and_qualified_when_won():
    m = marks((0, "0 - Prospecting"), (3, "Closed Won"))
    assert (m.nbm_at, m.qualified_at) == (day(3), day(3))


def test_changes_arriving_out_of_order_give_the_same_history():
    ordered_ = changes((0, "1 - Interest"), (2, "2 - Qualified"), (4, "Closed Won"))
    shuffled = [ordered_[2], ordered_[0], ordered_[1]]
    assert fold(shuffled, STAGES) == fold(ordered_, STAGES)


def test_cycle_time_runs_from_qualified_not_from_creation():
    versions = fold(changes((0, "1 - Interest"), (10, "2 - Qualified"), (40, "Closed Won")), STAGES)
    m = milestones(versions)
    assert cycle_time(versions[-1], m) == timedelta(days=30)
    assert cycle_time(versions[1], m) is None  # still open


def test_cycle_time_is_none_when_lost_before_qualifying():
    versions = fold(changes((0, "1 - Interest"), (5, "Closed Lost")), STAGES)
    assert cycle_time(versions[-1], milestones(versions)) is None


def test_state_as_of_any_moment():
    versions = fold(
        [
            OpportunityChange(day(0), "a", stage="1 - Interest", amount=Decimal(100)),
            OpportunityChange(day(2), "b", amount=Decimal(150)),
            OpportunityChange(day(5), "c", stage="Closed Won"),
        ],
        STAGES,
    )
    assert as_of(versions, day(0) - timedelta(seconds=1)) is None
    at_1 = as_of(versions, day(1))
    assert at_1 is not None and at_1.stage is not None
    assert (at_1.stage.order, at_1.amount) == (1, Decimal(100))
    at_2 = as_of(versions, day(2))  # a change exactly at the moment counts
    assert at_2 is not None and at_2.amount == Decimal(150)
    at_9 = as_of(versions, day(9))
    assert at_9 is not None and at_9.stage is not None
    assert at_9.stage.kind is StageKind.WON and at_9.closed_at == day(5)


def test_partial_changes_merge_and_category_follows_closed_stages():
    versions = fold(
        [
            OpportunityChange(
                day(0), "a", stage="2 - Qualified", forecast_category="BestCase", owner_id="u1"
            ),
            OpportunityChange(day(1), "b", forecast_category="Forecast"),
            OpportunityChange(day(2), "c", stage="Closed Won"),
            OpportunityChange(day(3), "d", stage="3 - Proposal"),
        ],
        STAGES,
    )
    cats = [v.forecast_category for v in versions]
    assert cats == [
        ForecastCategory.BEST_CASE,
        ForecastCategory.COMMIT,
        ForecastCategory.CLOSED,
        ForecastCategory.PIPELINE,
    ]
    assert all(v.owner_id == "u1" for v in versions)
    assert versions[-1].closed_at is None  # reopened


def test_closed_at_is_when_it_entered_the_closed_stage_it_is_in():
    versions = fold(
        [
            OpportunityChange(day(0), "a", stage="2"),
            OpportunityChange(day(3), "b", stage="Closed Won"),
            OpportunityChange(day(4), "c", amount=Decimal(5)),  # still won: same close
            OpportunityChange(day(6), "d", stage="2"),
            OpportunityChange(day(8), "e", stage="Closed Won"),
        ],
        STAGES,
    )
    assert [v.closed_at for v in versions] == [None, day(3), day(3), None, day(8)]


def test_flags_apply_only_with_the_change_that_sent_them():
    versions = fold(
        [
            OpportunityChange(day(0), "a", stage="Signed", is_closed=True, is_won=True),
            OpportunityChange(day(1), "b", stage="2 - Qualified"),
        ],
        STAGES,
    )
    assert versions[0].is_won and versions[1].is_open
