"""When a rep is on shift: the minute before and after each edge, shifts that cross
midnight, holidays, and the daylight-saving nights of Europe and the US."""

from datetime import UTC, date, datetime, timedelta

import pytest

from revops.router.domain.eligibility import may_take_more, regions_coming_on_shift
from revops.router.domain.reps import Rep
from revops.router.domain.rotation import Member, RotationState, next_turn
from revops.router.domain.rules import members_on_shift
from revops.router.domain.working_hours import (
    Shift,
    WorkingHours,
    on_shift,
    working_hours_of,
)

WEEKDAYS = frozenset(range(5))
SECOND = timedelta(seconds=1)


def hours(zone: str, *shifts: Shift, holidays: tuple[date, ...] = ()) -> WorkingHours:
    return WorkingHours(zone, shifts, frozenset(holidays))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


NINE_TO_FIVE_BERLIN = hours("Europe/Berlin", Shift(WEEKDAYS, 9 * 60, 17 * 60))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Thursday 2026-12-03, Berlin is UTC+1: 09:00 local is 08:00 UTC.
        (utc(2026, 12, 3, 8) - SECOND, False),
        (utc(2026, 12, 3, 8), True),
        (utc(2026, 12, 3, 7, 59), False),  # the minute before
        (utc(2026, 12, 3, 8, 1), True),
        (utc(2026, 12, 3, 16) - SECOND, True),  # 16:59:59 local
        (utc(2026, 12, 3, 16), False),  # 17:00 local: the end is not on shift
        (utc(2026, 12, 5, 10), False),  # Saturday
        (utc(2026, 12, 7, 8), True),  # Monday
    ],
)
def test_a_day_shift_starts_on_its_minute_and_ends_before_its_last(at, expected):
    assert on_shift(NINE_TO_FIVE_BERLIN, at) is expected


NIGHTS_NEW_YORK = hours("America/New_York", Shift(frozenset({4, 6}), 22 * 60, 6 * 60))


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # Friday 2026-12-04 22:00 EST (UTC-5) to Saturday 06:00.
        ((2026, 12, 4, 21, 59), False),
        ((2026, 12, 4, 22, 0), True),
        ((2026, 12, 4, 23, 59), True),
        ((2026, 12, 5, 0, 0), True),  # past midnight: still Friday's shift
        ((2026, 12, 5, 5, 59), True),
        ((2026, 12, 5, 6, 0), False),
        ((2026, 12, 5, 22, 0), False),  # Saturday evening: no shift starts on Saturday
        ((2026, 12, 6, 23, 0), True),  # Sunday's shift
        ((2026, 12, 7, 5, 0), True),  # ...into Monday morning
        ((2026, 12, 7, 22, 0), False),  # Monday evening: no shift starts
    ],
)
def test_a_night_shift_crosses_midnight_and_belongs_to_the_day_it_starts(local, expected):
    at = datetime(*local) + timedelta(hours=5)
    assert on_shift(NIGHTS_NEW_YORK, at.replace(tzinfo=UTC)) is expected


def test_a_holiday_cancels_the_shifts_starting_on_it_not_the_night_before():
    christmas = date(2026, 12, 25)  # a Friday
    nights = hours("UTC", Shift(frozenset(range(7)), 22 * 60, 6 * 60), holidays=(christmas,))
    assert on_shift(nights, utc(2026, 12, 25, 5, 59))  # Thursday night's shift still runs
    assert not on_shift(nights, utc(2026, 12, 25, 22))
    assert not on_shift(nights, utc(2026, 12, 26, 5))  # the tail of the cancelled one
    assert on_shift(nights, utc(2026, 12, 26, 22))
    days = hours("UTC", Shift(WEEKDAYS, 9 * 60, 17 * 60), holidays=(christmas,))
    assert not on_shift(days, utc(2026, 12, 25, 12))
    assert on_shift(days, utc(2026, 12, 24, 12))


def test_the_same_local_hours_move_in_utc_across_the_us_spring_change():
    # 2026-03-08: New York goes from UTC-5 to UTC-4 at 02:00 local.
    new_york = hours("America/New_York", Shift(WEEKDAYS, 9 * 60, 17 * 60))
    assert not on_shift(new_york, utc(2026, 3, 6, 13, 59))  # Friday: 08:59 EST
    assert on_shift(new_york, utc(2026, 3, 6, 14))
    assert on_shift(new_york, utc(2026, 3, 9, 13))  # Monday: 09:00 EDT
    assert not on_shift(new_york, utc(2026, 3, 9, 13) - SECOND)
    assert not on_shift(new_york, utc(2026, 3, 9, 21))  # 17:00 EDT
    assert on_shift(new_york, utc(2026, 3, 9, 21) - SECOND)


def test_a_shift_starting_in_the_skipped_hour_begins_when_the_clocks_jump():
    # 2026-03-29, Berlin: 02:00 CET (01:00 UTC) becomes 03:00 CEST; 02:30 never happens.
    sunday = hours("Europe/Berlin", Shift(frozenset({6}), 2 * 60 + 30, 10 * 60))
    assert not on_shift(sunday, utc(2026, 3, 29, 1) - SECOND)  # 01:59:59 CET
    assert on_shift(sunday, utc(2026, 3, 29, 1))  # 03:00 CEST
    assert on_shift(sunday, utc(2026, 3, 29, 8) - SECOND)  # 09:59:59 CEST
    assert not on_shift(sunday, utc(2026, 3, 29, 8))  # 10:00 CEST


def test_the_hour_that_happens_twice_is_on_shift_both_times():
    # 2026-10-25, Berlin: 03:00 CEST (01:00 UTC) becomes 02:00 CET again.
    early = hours("Europe/Berlin", Shift(frozenset({6}), 1 * 60, 2 * 60 + 30))
    assert on_shift(early, utc(2026, 10, 25, 0, 29))  # 02:29 CEST
    assert not on_shift(early, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert on_shift(early, utc(2026, 10, 25, 1))  # 02:00 CET, the second time
    assert on_shift(early, utc(2026, 10, 25, 1, 29))
    assert not on_shift(early, utc(2026, 10, 25, 1, 30))  # 02:30 CET


def test_a_night_shift_over_the_autumn_change_lasts_an_hour_longer_in_utc():
    nights = hours("Europe/Berlin", Shift(frozenset({5}), 22 * 60, 6 * 60))  # Saturdays
    start, end = utc(2026, 10, 24, 20), utc(2026, 10, 25, 5)  # 22:00 CEST, 06:00 CET
    assert not on_shift(nights, start - SECOND) and on_shift(nights, start)
    assert on_shift(nights, end - SECOND) and not on_shift(nights, end)
    assert end - start == timedelta(hours=9)


def test_a_whole_day_ends_at_24_00_and_no_hours_is_always_on_shift():
    whole = working_hours_of(
        {"time_zone": "UTC", "shifts": [{"days": ["sat"], "start": "00:00", "end": "24:00"}]}
    )
    assert on_shift(whole, utc(2026, 12, 5, 0))
    assert on_shift(whole, utc(2026, 12, 6) - SECOND)
    assert not on_shift(whole, utc(2026, 12, 6))
    assert on_shift(None, utc(2026, 12, 6))


def test_the_json_form_is_read_and_bad_values_are_refused_with_their_name():
    parsed = working_hours_of(
        {
            "time_zone": "Europe/Berlin",
            "shifts": [{"days": ["mon", "Friday"], "start": "09:00", "end": "17:30"}],
            "holidays": ["2026-12-25"],
        }
    )
    assert parsed == hours(
        "Europe/Berlin", Shift(frozenset({0, 4}), 540, 1050), holidays=(date(2026, 12, 25),)
    )
    assert working_hours_of(None) is None
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        hours("Mars/Olympus", Shift(WEEKDAYS, 540, 1020))
    with pytest.raises(ValueError, match="same minute"):
        Shift(WEEKDAYS, 540, 540)
    with pytest.raises(ValueError, match="unknown weekday 'funday'"):
        working_hours_of(
            {"time_zone": "UTC", "shifts": [{"days": ["funday"], "start": "09:00", "end": "10:00"}]}
        )
    with pytest.raises(ValueError, match="naive"):
        on_shift(NINE_TO_FIVE_BERLIN, datetime(2026, 12, 3, 10))


DAY = Rep("s1", "SDR", "EMEA", certified=True, position=1, hours=NINE_TO_FIVE_BERLIN)
ALWAYS = Rep("s2", "SDR", "EMEA", certified=True, position=2)
REPS = {r.id: r for r in (DAY, ALWAYS)}
MEMBERS = (Member("s1", place=1), Member("s2", place=2))


def test_a_rep_off_shift_is_passed_over_and_keeps_their_place():
    evening = utc(2026, 12, 3, 19)
    turn = next_turn(members_on_shift(MEMBERS, REPS, evening), RotationState(), {})
    assert turn is not None and turn.rep_id == "s2"
    # The next morning the pointer is past s2: s1 is next, as after a pause.
    morning = utc(2026, 12, 4, 8)
    again = next_turn(members_on_shift(MEMBERS, REPS, morning), turn.after, {})
    assert again is not None and again.rep_id == "s1"
    assert members_on_shift(MEMBERS, REPS, morning) is MEMBERS  # nothing to change


def test_nobody_on_shift_leaves_nobody_to_take_the_turn():
    night = utc(2026, 12, 3, 23)
    alone = (Member("s1", place=1),)
    assert next_turn(members_on_shift(alone, REPS, night), RotationState(), {}) is None


def test_working_hours_that_put_a_rep_on_shift_let_them_take_waiting_leads():
    at = utc(2026, 12, 3, 19)  # 20:00 in Berlin
    late = hours("Europe/Berlin", Shift(WEEKDAYS, 12 * 60, 22 * 60))
    assert may_take_more(DAY, Rep("s1", "SDR", "EMEA", certified=True, hours=late), at)
    assert may_take_more(DAY, Rep("s1", "SDR", "EMEA", certified=True), at)
    assert not may_take_more(DAY, DAY, at)
    assert not may_take_more(None, DAY, at)  # a new rep off shift takes nothing now


def test_regions_coming_on_shift_are_those_of_reps_whose_shift_began_since():
    before, after = utc(2026, 12, 3, 8) - SECOND, utc(2026, 12, 3, 8)
    assert regions_coming_on_shift(REPS.values(), before, after) == {"EMEA": ["s1"]}
    assert regions_coming_on_shift(REPS.values(), after, after + SECOND) == {}
    # Unknown before (the router starting): whoever with working hours is on shift now.
    assert regions_coming_on_shift(REPS.values(), None, after) == {"EMEA": ["s1"]}
    assert regions_coming_on_shift(REPS.values(), None, utc(2026, 12, 3, 20)) == {}
