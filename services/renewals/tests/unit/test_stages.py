import pytest

from revops.renewals.domain.stages import (
    ForecastCategory,
    Stage,
    StageKind,
    StageMap,
    forecast_category,
    parse_forecast_category,
)

STAGES = StageMap()


@pytest.mark.parametrize(
    ("name", "order"),
    [
        ("1 - Interest", 1),
        ("Stage 2 - Qualified", 2),
        ("0. Prospecting", 0),
        ("stage 3: Proposal", 3),
        ("4) Negotiation", 4),
        ("  5 \u2013 Verbal  ", 5),
        ("Stage 6", 6),
        ("10 - Contract", 10),
    ],
)
def test_order_comes_from_the_number_in_the_name(name, order):
    stage = STAGES.parse(name)
    assert (stage.order, stage.kind) == (order, StageKind.OPEN)


@pytest.mark.parametrize(
    "name", ["Closed Won", "closed won", "CLOSED  WON", "closed-won", "7 - Closed Won", "closedwon"]
)
def test_closed_won_in_any_case_and_spacing(name):
    assert STAGES.parse(name).kind is StageKind.WON


@pytest.mark.parametrize("name", ["Closed Lost", "closed lost", "8 - Closed Lost", "closedlost"])
def test_closed_lost_in_any_case_and_spacing(name):
    assert STAGES.parse(name).kind is StageKind.LOST


def test_a_name_that_merely_contains_won_is_open():
    assert STAGES.parse("Won over by demo").kind is StageKind.OPEN


@pytest.mark.parametrize(
    ("name", "order"),
    [
        ("Prospecting", 0),
        ("Qualification", 1),
        ("Needs Analysis", 2),
        ("Negotiation/Review", 7),
        ("negotiation / review", 7),
        ("appointmentscheduled", 1),
        ("qualifiedtobuy", 2),
        ("presentationscheduled", 3),
        ("decisionmakerboughtin", 4),
        ("contractsent", 5),
    ],
)
def test_unnumbered_salesforce_and_hubspot_stages_from_the_mapping(name, order):
    assert STAGES.parse(name).order == order


def test_hubspot_closed_stages():
    assert STAGES.parse("closedwon").kind is StageKind.WON
    assert STAGES.parse("closedlost").kind is StageKind.LOST


def test_configuration_overrides_and_extends_the_mapping():
    custom = STAGES.with_overrides(
        {"Prospecting": 1, "Discovery Call": 2}, won=frozenset({"Signed"})
    )
    assert custom.parse("prospecting").order == 1
    assert custom.parse("Discovery call").order == 2
    assert custom.parse("signed").kind is StageKind.WON
    assert STAGES.parse("Prospecting").order == 0  # the default map is untouched


def test_the_mapping_wins_over_the_number_in_the_name():
    custom = StageMap(orders={"3 - Demo": 1})
    assert custom.parse("3 - Demo").order == 1


def test_an_unknown_name_has_no_order_and_is_never_pipeline():
    stage = STAGES.parse("Something else")
    assert stage.order is None
    assert not stage.reaches(0)


def test_crm_flags_win_over_the_name():
    assert STAGES.parse("Signed", is_closed=True, is_won=True).kind is StageKind.WON
    assert STAGES.parse("Gone", is_closed=True, is_won=False).kind is StageKind.LOST
    assert STAGES.parse("Closed Won", is_closed=False).kind is StageKind.OPEN


def test_reaches_counts_won_as_beyond_everything_and_lost_as_nothing():
    assert STAGES.parse("Closed Won").reaches(2)
    assert not STAGES.parse("Closed Lost").reaches(1)
    assert STAGES.parse("1 - Interest").reaches(1)
    assert not STAGES.parse("1 - Interest").reaches(2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Pipeline", ForecastCategory.PIPELINE),
        ("Best Case", ForecastCategory.BEST_CASE),
        ("BestCase", ForecastCategory.BEST_CASE),
        ("BEST_CASE", ForecastCategory.BEST_CASE),
        ("Commit", ForecastCategory.COMMIT),
        ("Forecast", ForecastCategory.COMMIT),
        ("Closed", ForecastCategory.CLOSED),
        ("Omitted", ForecastCategory.OMITTED),
        ("NOT_FORECASTED", ForecastCategory.OMITTED),
        ("Nonsense", None),
        (None, None),
    ],
)
def test_forecast_categories_normalised(value, expected):
    assert parse_forecast_category(value) is expected


def test_closed_stages_decide_the_category():
    won, lost, open_ = STAGES.parse("Closed Won"), STAGES.parse("Closed Lost"), Stage("2", 2)
    assert forecast_category("Commit", won) is ForecastCategory.CLOSED
    assert forecast_category("Commit", lost) is ForecastCategory.OMITTED
    assert forecast_category(None, open_) is ForecastCategory.PIPELINE
    assert forecast_category("Closed", open_) is ForecastCategory.PIPELINE  # reopened
    assert forecast_category("BestCase", open_) is ForecastCategory.BEST_CASE
