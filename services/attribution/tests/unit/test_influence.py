from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revops.attribution.domain.influence import (
    AttributionModel,
    CampaignInfluence,
    CampaignTouch,
    InfluencePolicy,
    Position,
    campaign_influence,
    influencing_touches,
    round_shares,
)

M = AttributionModel
T = datetime(2026, 6, 30, 17, 0, tzinfo=UTC)
LEAD = "lead@acme.com"
COLLEAGUE = "colleague@acme.com"


def touch(
    touch_id: str, days_before: float, person: str = COLLEAGUE, campaign: str | None = None
) -> CampaignTouch:
    return CampaignTouch(
        touch_id=touch_id,
        person_id=person,
        campaign_id=campaign or f"cmp-{touch_id}",
        occurred_at=T - timedelta(days=days_before),
    )


def influence(touches: list[CampaignTouch], **kw: object) -> CampaignInfluence:
    return campaign_influence(
        touches,
        opportunity_created_at=T,
        converting_person_id=LEAD,
        **kw,  # type: ignore[arg-type]
    )


def credits(result: CampaignInfluence, model: AttributionModel) -> dict[str, Decimal]:
    return {t.touch.touch_id: t.credit[model] for t in result.touches}


def d(value: str) -> Decimal:
    return Decimal(value)


# -- the window --------------------------------------------------------------


def test_a_form_30_days_before_opportunity_creation_influences() -> None:
    assert [t.touch_id for t in influencing_touches([touch("a", 30)], T)] == ["a"]


def test_a_form_31_days_before_does_not() -> None:
    assert influencing_touches([touch("a", 31)], T) == ()


def test_the_window_is_elapsed_time_one_second_past_30_days_does_not_count() -> None:
    just_out = CampaignTouch("a", LEAD, "c", T - timedelta(days=30, seconds=1))
    assert influencing_touches([just_out], T) == ()


def test_a_form_at_creation_counts_and_one_after_does_not() -> None:
    at_t = touch("at", 0)
    after = touch("after", -0.001)
    assert [t.touch_id for t in influencing_touches([after, at_t], T)] == ["at"]


def test_the_window_is_policy() -> None:
    policy = InfluencePolicy(window=timedelta(days=45))
    assert len(influencing_touches([touch("a", 40)], T, policy)) == 1


def test_a_touch_seen_twice_counts_once() -> None:
    result = influence([touch("a", 3), touch("a", 3)])
    assert len(result.touches) == 1
    assert result.touches[0].credit[M.LINEAR] == 1


def test_late_arriving_touches_give_the_same_answer_in_any_order() -> None:
    touches = [touch("a", 20), touch("b", 10, LEAD), touch("c", 1)]
    assert influence(touches) == influence(list(reversed(touches)))


# -- primary campaign -------------------------------------------------------


def test_primary_campaign_is_the_converting_leads_last_form_before_creation() -> None:
    touches = [
        touch("lead-1", 20, LEAD, "ebook"),
        touch("lead-2", 5, LEAD, "demo"),
        touch("colleague", 1, COLLEAGUE, "webinar"),
        touch("lead-after", -1, LEAD, "newsletter"),
    ]
    result = influence(touches)
    assert result.primary_campaign_id == "demo"
    assert result.primary_touch_id == "lead-2"


def test_primary_campaign_may_be_older_than_the_window() -> None:
    result = influence([touch("old", 90, LEAD, "ebook"), touch("c", 2)])
    assert result.primary_campaign_id == "ebook"
    assert [t.touch.touch_id for t in result.touches] == ["c"]


def test_no_primary_campaign_without_a_converting_lead() -> None:
    result = campaign_influence(
        [touch("a", 1, LEAD)], opportunity_created_at=T, converting_person_id=None
    )
    assert result.primary_campaign_id is None
    assert result.touches[0].credit[M.LEAD_CREATION] == 1


# -- the models --------------------------------------------------------------


def test_no_touch_no_credit() -> None:
    result = influence([])
    assert result.touches == ()
    assert result.by_campaign(M.W_SHAPED) == {}


def test_one_touch_takes_everything_under_every_model() -> None:
    result = influence([touch("only", 4, LEAD)])
    (only,) = result.touches
    assert only.positions == frozenset(Position)
    assert all(only.credit[model] == 1 for model in M)


def test_two_touches() -> None:
    # The lead's form came first: FT and LC fall on it, OC and CW on the colleague's.
    result = influence([touch("lead", 10, LEAD), touch("colleague", 2)])
    assert credits(result, M.FIRST_TOUCH) == {"lead": 1, "colleague": 0}
    assert credits(result, M.LEAD_CREATION) == {"lead": 1, "colleague": 0}
    assert credits(result, M.LAST_TOUCH) == {"lead": 0, "colleague": 1}
    assert credits(result, M.U_SHAPED) == {"lead": 1, "colleague": 0}
    # 60% and 30% peaks, no rest to spread the 10% on: scaled to 2/3 and 1/3.
    assert credits(result, M.W_SHAPED) == {"lead": d("0.666667"), "colleague": d("0.333333")}
    # 45% and 45%: halves.
    assert credits(result, M.FULL_PATH) == {"lead": d("0.5"), "colleague": d("0.5")}
    assert credits(result, M.LINEAR) == {"lead": d("0.5"), "colleague": d("0.5")}


def test_three_distinct_peaks() -> None:
    touches = [touch("first", 20), touch("lead", 10, LEAD), touch("last", 1)]
    result = influence(touches)
    assert credits(result, M.U_SHAPED) == {"first": d("0.5"), "lead": d("0.5"), "last": 0}
    # Three 30% peaks and nothing else: thirds, the odd unit to the earliest.
    assert credits(result, M.W_SHAPED) == {
        "first": d("0.333334"),
        "lead": d("0.333333"),
        "last": d("0.333333"),
    }
    # 22.5 / 22.5 / 45 (OC and CW on the last), scaled from 90% to 100%.
    assert credits(result, M.FULL_PATH) == {"first": d("0.25"), "lead": d("0.25"), "last": d("0.5")}
    assert credits(result, M.LAST_TOUCH) == {"first": 0, "lead": 0, "last": 1}
    positions = {t.touch.touch_id: t.positions for t in result.touches}
    assert positions["first"] == {Position.FIRST_TOUCH}
    assert positions["lead"] == {Position.LEAD_CREATION}
    assert positions["last"] == {Position.OPPORTUNITY_CREATION, Position.CLOSED_WON}


def test_many_touches() -> None:
    touches = [
        touch("first", 25),
        touch("lead", 20, LEAD),
        touch("m1", 15),
        touch("m2", 10, LEAD),
        touch("m3", 5),
        touch("last", 1),
    ]
    result = influence(touches)
    assert credits(result, M.W_SHAPED) == {
        "first": d("0.3"),
        "lead": d("0.3"),
        "m1": d("0.033334"),
        "m2": d("0.033333"),
        "m3": d("0.033333"),
        "last": d("0.3"),
    }
    assert credits(result, M.FULL_PATH) == {
        "first": d("0.225"),
        "lead": d("0.225"),
        "m1": d("0.033334"),
        "m2": d("0.033333"),
        "m3": d("0.033333"),
        "last": d("0.45"),
    }
    assert credits(result, M.U_SHAPED) == {
        "first": d("0.5"),
        "lead": d("0.5"),
        "m1": 0,
        "m2": 0,
        "m3": 0,
        "last": 0,
    }
    assert set(credits(result, M.LINEAR).values()) == {d("0.166667"), d("0.166666")}


def test_coinciding_first_touch_and_lead_creation_add_up() -> None:
    touches = [touch("lead", 20, LEAD), touch("m1", 10), touch("m2", 5), touch("last", 1)]
    result = influence(touches)
    assert credits(result, M.W_SHAPED) == {
        "lead": d("0.6"),
        "m1": d("0.05"),
        "m2": d("0.05"),
        "last": d("0.3"),
    }
    assert credits(result, M.FULL_PATH) == {
        "lead": d("0.45"),
        "m1": d("0.05"),
        "m2": d("0.05"),
        "last": d("0.45"),
    }
    assert credits(result, M.U_SHAPED)["lead"] == 1


def test_lead_creation_and_opportunity_creation_on_the_same_touch() -> None:
    touches = [touch("first", 20), touch("mid", 10), touch("lead", 1, LEAD)]
    result = influence(touches)
    assert credits(result, M.W_SHAPED) == {"first": d("0.3"), "mid": d("0.1"), "lead": d("0.6")}


def test_the_lead_creation_touch_given_by_id_wins_over_the_leads_earliest() -> None:
    touches = [touch("a", 20, LEAD), touch("b", 10, LEAD), touch("c", 1)]
    result = influence(touches, lead_creation_touch_id="b")
    assert credits(result, M.LEAD_CREATION) == {"a": 0, "b": 1, "c": 0}


def test_without_a_lead_touch_in_the_window_lead_creation_falls_to_the_first_touch() -> None:
    result = influence([touch("old-lead", 40, LEAD), touch("a", 10), touch("b", 2)])
    assert credits(result, M.LEAD_CREATION) == {"a": 1, "b": 0}


def test_time_decay_halves_every_half_life() -> None:
    result = influence([touch("week-old", 7), touch("today", 0)])
    assert credits(result, M.TIME_DECAY) == {"week-old": d("0.333333"), "today": d("0.666667")}
    slower = influence(
        [touch("week-old", 7), touch("today", 0)], policy=InfluencePolicy(half_life=timedelta(14))
    )
    # 2 ** -0.5 = 0.7071...; 0.7071 / 1.7071 = 0.414214
    assert credits(slower, M.TIME_DECAY) == {"week-old": d("0.414214"), "today": d("0.585786")}


def test_credit_per_campaign_adds_the_touches_of_one_campaign() -> None:
    touches = [
        touch("a", 20, LEAD, "webinar"),
        touch("b", 10, COLLEAGUE, "webinar"),
        touch("c", 1, COLLEAGUE, "demo"),
    ]
    result = influence(touches)
    assert result.by_campaign(M.LINEAR) == {"webinar": d("0.666667"), "demo": d("0.333333")}
    assert result.by_campaign(M.FIRST_TOUCH) == {"webinar": 1, "demo": 0}


def test_only_the_asked_models_are_computed() -> None:
    result = influence([touch("a", 1)], models=(M.LINEAR,))
    assert set(result.touches[0].credit) == {M.LINEAR}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"w_shaped_peak": Fraction(2, 5)},
        {"full_path_peak": Fraction(3, 10)},
        {"u_shaped_peak": Fraction(0)},
        {"half_life": timedelta(0)},
    ],
)
def test_impossible_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        InfluencePolicy(**kwargs)  # type: ignore[arg-type]


def test_rounding_keeps_the_sum_exact() -> None:
    thirds = [Fraction(1, 3)] * 3
    assert round_shares(thirds, Decimal("0.01")) == [d("0.34"), d("0.33"), d("0.33")]
    sevenths = [Fraction(1, 7)] * 7
    assert sum(round_shares(sevenths, Decimal("0.000001"))) == 1


@given(
    days=st.lists(st.floats(min_value=0, max_value=35, allow_nan=False), min_size=1, max_size=40),
    lead_mask=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_every_model_sums_to_exactly_one(days: list[float], lead_mask: list[bool]) -> None:
    touches = [
        touch(f"t{i}", day, LEAD if lead_mask[i] else COLLEAGUE, f"c{i % 3}")
        for i, day in enumerate(days)
    ]
    result = influence(touches)
    if not result.touches:
        assert all(day > 30 for day in days)
        return
    for model in M:
        column = [t.credit[model] for t in result.touches]
        assert sum(column) == 1
        assert all(credit >= 0 for credit in column)
        assert sum(result.by_campaign(model).values()) == 1
