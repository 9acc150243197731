"""Figures as a sales leader reads them, from whatever shape the APIs send."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from revops.console import formats


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234567.89", "1,234,568"),
        ("0", "0"),
        ("0.00", "0"),
        (0.0, "0"),
        (Decimal("999.49"), "999"),
        (-1500, "\u22121,500"),
        (None, "\u2014"),
        ("not a number", "not a number"),
        ("NaN", "NaN"),
    ],
)
def test_money_in_whole_units_with_separators(value, shown):
    assert formats.money(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (9.5, "9.5"),
        (950, "950"),
        (999.4, "999"),
        (1000, "1K"),
        (12_500, "12.5K"),
        (999_999, "1000K"),
        (1_000_000, "1M"),
        (1_250_000, "1.2M"),
        (3_400_000_000, "3.4B"),
        (-2500, "\u22122.5K"),
        (None, "\u2014"),
    ],
)
def test_compact_figures_for_charts(value, shown):
    assert formats.compact(value) == shown


@pytest.mark.parametrize(
    ("now", "before", "shown"),
    [
        (200_000, 120_000, "+66.7%"),
        (90, 100, "\u221210.0%"),
        (100, 100, "no change"),
        (0, 0, "no change"),
        (5, 0, "new"),
        ("0.00", "50.00", "\u2212100.0%"),
        (5, None, "\u2014"),
    ],
)
def test_week_over_week_change(now, before, shown):
    assert formats.change(now, before) == shown


@pytest.mark.parametrize(
    "value",
    ["2026-12-03T14:05:09Z", "2026-12-03T14:05:09+00:00", "2026-12-03T15:05:09+01:00"],
)
def test_a_moment_reads_the_same_whichever_way_the_api_writes_it(value):
    assert formats.when(value) == "3 Dec 2026, 14:05 UTC"


def test_dates_and_missing_values():
    assert formats.day("2026-01-09") == "9 Jan 2026"
    assert formats.day(date(2026, 12, 31)) == "31 Dec 2026"
    assert formats.day(datetime(2026, 3, 1, 23, 0, tzinfo=UTC)) == "1 Mar 2026"
    assert formats.day(None) == formats.when(None) == "\u2014"
    assert formats.when("garbage") == "garbage"
    assert formats.when("2026-12-03T14:05:09") == "3 Dec 2026, 14:05 UTC"  # naive: UTC


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (86_400, "1 d"),
        (90_000, "1 d 1 h"),
        (-120, "\u22122 min"),
        (None, "\u2014"),
    ],
)
def test_durations(seconds, shown):
    assert formats.duration(seconds) == shown


def test_labels_and_counts():
    assert formats.label("round_robin") == "Round robin"
    assert formats.label(None) == formats.label("") == "(none)"
    assert formats.count(1234) == "1,234"
    assert formats.percent(0.125) == "12.5%"
    assert formats.percent(None) == "\u2014"
