from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfoNotFoundError

import pytest

from revops.renewals.domain.schedule import SnapshotSchedule

FRIDAY_18 = SnapshotSchedule()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_winter_friday_18_la_is_02_utc_saturday():
    assert FRIDAY_18.next_scheduled_at(utc(2026, 1, 5)) == utc(2026, 1, 10, 2)


def test_summer_friday_18_la_is_01_utc_saturday():
    assert FRIDAY_18.next_scheduled_at(utc(2026, 7, 1)) == utc(2026, 7, 4, 1)


def test_week_of_the_march_change():
    # Clocks go forward on Sunday 2026-03-08: Friday 6th is still PST, Friday 13th PDT.
    assert FRIDAY_18.next_scheduled_at(utc(2026, 3, 2)) == utc(2026, 3, 7, 2)
    assert FRIDAY_18.next_scheduled_at(utc(2026, 3, 7, 2)) == utc(2026, 3, 14, 1)
    assert utc(2026, 3, 14, 1) - utc(2026, 3, 7, 2) == timedelta(days=7, hours=-1)


def test_week_of_the_november_change():
    # Clocks go back on Sunday 2026-11-01: Friday Oct 30 is PDT, Friday Nov 6 PST.
    assert FRIDAY_18.next_scheduled_at(utc(2026, 10, 26)) == utc(2026, 10, 31, 1)
    assert FRIDAY_18.next_scheduled_at(utc(2026, 10, 31, 1)) == utc(2026, 11, 7, 2)


def test_next_is_strictly_after_a_second_before_and_exactly_at():
    at = utc(2026, 3, 14, 1)
    assert FRIDAY_18.next_scheduled_at(at - timedelta(seconds=1)) == at
    assert FRIDAY_18.next_scheduled_at(at) == utc(2026, 3, 21, 1)


def test_friday_evening_local_but_saturday_utc_is_handled():
    # 17:59 LA on Friday is already Saturday in UTC; the snapshot is a minute away.
    assert FRIDAY_18.next_scheduled_at(utc(2026, 7, 4, 0, 59)) == utc(2026, 7, 4, 1)


def test_previous_scheduled_at():
    assert FRIDAY_18.previous_scheduled_at(utc(2026, 3, 14, 1)) == utc(2026, 3, 14, 1)
    assert FRIDAY_18.previous_scheduled_at(utc(2026, 3, 14, 0, 59)) == utc(2026, 3, 7, 2)


def test_catch_up_lists_every_missed_week_across_both_changes():
    missed = FRIDAY_18.scheduled_times_between(utc(2026, 2, 28, 2), utc(2026, 3, 21, 1))
    assert missed == [utc(2026, 3, 7, 2), utc(2026, 3, 14, 1), utc(2026, 3, 21, 1)]
    autumn = FRIDAY_18.scheduled_times_between(utc(2026, 10, 24, 1), utc(2026, 11, 14, 1))
    assert autumn == [utc(2026, 10, 31, 1), utc(2026, 11, 7, 2)]


def test_catch_up_is_empty_when_nothing_was_missed():
    assert FRIDAY_18.scheduled_times_between(utc(2026, 3, 14, 1), utc(2026, 3, 21, 0, 59)) == []


def test_a_year_of_snapshots_is_52_or_53_all_at_18_local():
    times = FRIDAY_18.scheduled_times_between(utc(2026, 1, 1), utc(2027, 1, 1))
    assert len(times) == 52
    local = [t.astimezone(FRIDAY_18.zone) for t in times]
    assert all(t.weekday() == 4 and t.time() == time(18) for t in local)


def test_day_and_time_in_configuration():
    monday_9 = SnapshotSchedule(weekday=0, at=time(9, 0))
    assert monday_9.next_scheduled_at(utc(2026, 3, 8)) == utc(2026, 3, 9, 16)


def test_a_local_time_skipped_by_the_spring_change_runs_an_hour_later():
    sunday_0230 = SnapshotSchedule(weekday=6, at=time(2, 30))
    moment = sunday_0230.next_scheduled_at(utc(2026, 3, 7))
    assert moment == utc(2026, 3, 8, 10, 30)  # 03:30 PDT


def test_bad_configuration_fails_early():
    with pytest.raises(ValueError):
        SnapshotSchedule(weekday=7)
    with pytest.raises(ZoneInfoNotFoundError):
        SnapshotSchedule(timezone="Mars/Olympus")


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        FRIDAY_18.next_scheduled_at(datetime(2026, 3, 1))
