"""What the pages compute from the APIs' answers."""

from __future__ import annotations

from decimal import Decimal

from revops.console.views import (
    Pager,
    amount_bars,
    campaign_table,
    category_bars,
    forecast_trend,
    pager,
)


def snapshot(as_of: str, **categories: tuple[int, str]) -> dict[str, object]:
    figures = {name: {"count": n, "amount": amount} for name, (n, amount) in categories.items()}
    return {"as_of": as_of, "contents": {"total": {"open_by_category": figures}}}


def test_the_trend_has_a_value_per_snapshot_and_a_missing_category_is_zero():
    trend = forecast_trend(
        [
            snapshot("2026-11-20T02:00:00Z", Pipeline=(2, "80000.00")),
            snapshot("2026-11-27T02:00:00+00:00", Pipeline=(1, "30000"), Commit=(1, "120000")),
            snapshot("2026-12-04T02:00:00Z", Pipeline=(1, "45000"), Commit=(2, "200000.00")),
        ]
    )
    assert trend.labels == ["20 Nov 2026", "27 Nov 2026", "4 Dec 2026"]
    assert trend.amounts == {
        "Pipeline": [Decimal(80000), Decimal(30000), Decimal(45000)],
        "Commit": [Decimal(0), Decimal(120000), Decimal(200000)],
    }
    commit = next(c for c in trend.changes if c.category == "Commit")
    assert (commit.amount, commit.previous, commit.count) == (Decimal(200000), Decimal(120000), 2)
    assert commit.delta == 80000


def test_a_listed_snapshot_gives_its_totals_as_a_whole_one_does():
    listed = {
        "as_of": "2026-12-04T02:00:00Z",
        "open_by_category": {"Commit": {"count": 2, "amount": "200000.00"}},
    }
    whole = snapshot("2026-12-04T02:00:00Z", Commit=(2, "200000.00"))
    assert forecast_trend([listed]) == forecast_trend([whole])
    assert forecast_trend([listed]).amounts == {"Commit": [Decimal(200000)]}


def test_one_snapshot_has_no_change_and_none_has_no_trend():
    trend = forecast_trend([snapshot("2026-12-04T02:00:00Z", Pipeline=(1, "10"))])
    assert trend.changes[0].previous is None and trend.changes[0].delta is None
    empty = forecast_trend([])
    assert empty.labels == [] and empty.amounts == {} and empty.changes == []


def test_bars_largest_first_and_an_empty_key_is_none():
    bars = amount_bars(
        [{"key": None, "amount": "10"}, {"key": "Inbound", "amount": "300.50"}, {"key": "X"}]
    )
    assert bars == [("Inbound", Decimal("300.50")), ("(none)", Decimal(10)), ("X", 0)]


def test_campaigns_get_a_column_per_model_most_credited_first():
    rows = campaign_table(
        {
            "linear": [
                {"campaign_id": "spring", "opportunities": 2, "credited_amount": "100"},
                {"campaign_id": "ebook", "opportunities": 1, "credited_amount": "300"},
            ],
            "first_touch": [{"campaign_id": "spring", "opportunities": 2, "credited_amount": "0"}],
        }
    )
    assert [r.campaign_id for r in rows] == ["ebook", "spring"]
    assert rows[1].credited_amount == {"linear": Decimal(100), "first_touch": Decimal(0)}
    assert rows[1].opportunities == 2


def test_category_bars_read_the_pipeline_figures():
    figures = {"total": {"open_by_category": {"Commit": {"amount": "5"}, "Pipeline": {}}}}
    assert category_bars(figures, ["Pipeline", "Commit"]) == [
        ("Commit", Decimal(5)),
        ("Pipeline", Decimal(0)),
    ]


def test_a_pager_links_the_pages_around_keeping_the_other_parameters():
    params = {"weeks": "4", "accounts_from": "25", "opportunities_from": "25"}
    middle = pager(params, "opportunities_from", 25, 25, 25, 60)
    assert (middle.first, middle.last, middle.total) == (26, 50, 60)
    assert middle.previous == "?weeks=4&accounts_from=25"  # the first page: no offset
    assert middle.next == "?weeks=4&accounts_from=25&opportunities_from=50"
    last = pager(params, "opportunities_from", 50, 25, 10, 60)
    assert (last.first, last.last, last.next) == (51, 60, None)
    assert last.previous == "?weeks=4&accounts_from=25&opportunities_from=25"


def test_a_pager_at_the_ends_and_past_them():
    assert pager({}, "from", 0, 25, 3, 3) == Pager(1, 3, 3, None, None)
    assert pager({}, "from", 0, 25, 0, 0) == Pager(0, 0, 0, None, None)
    beyond = pager({}, "from", 500, 25, 0, 60)  # typed by hand, past the end
    assert (beyond.first, beyond.next, beyond.previous) == (0, None, "?from=35")
