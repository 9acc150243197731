"""SLAs in business hours: open time between two instants and the instant an allowance
runs out, from Friday evening to Monday, over a holiday and the daylight-saving weeks."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from revops.router.domain.business_hours import deadline, open_time, wall_instant
from revops.router.domain.rules import RoutingPolicy
from revops.router.domain.sla import LeadTimes, breaches
from revops.router.domain.working_hours import Shift, WorkingHours
from revops.router.settings import RouterSettings

WEEKDAYS = frozenset(range(5))
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE = WorkingHours("Europe/Berlin", (Shift(WEEKDAYS, 9 * 60, 17 * 60),))
MINUTE, SECOND, HOUR = timedelta(minutes=1), timedelta(seconds=1), timedelta(hours=1)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def test_friday_evening_to_monday_counts_only_the_open_minutes():
    friday = berlin(2026, 12, 4, 16, 58)
    assert deadline(OFFICE, friday, 5 * MINUTE) == berlin(2026, 12, 7, 9, 3)
    assert open_time(OFFICE, friday, berlin(2026, 12, 7, 9, 3)) == 5 * MINUTE
    assert open_time(OFFICE, friday, berlin(2026, 12, 7, 9, 3, 1)) == 5 * MINUTE + SECOND
    assert open_time(OFFICE, friday, berlin(2026, 12, 6, 12)) == 2 * MINUTE  # Sunday noon


def test_a_lead_of_the_weekend_starts_its_clock_at_the_monday_opening():
    saturday = berlin(2026, 12, 5, 11)
    assert deadline(OFFICE, saturday, 5 * MINUTE) == berlin(2026, 12, 7, 9, 5)
    assert open_time(OFFICE, saturday, berlin(2026, 12, 7, 9)) == timedelta(0)


def test_an_allowance_used_up_at_the_close_is_due_then_and_met_at_the_next_opening():
    friday = berlin(2026, 12, 4, 16, 55)
    assert deadline(OFFICE, friday, 5 * MINUTE) == berlin(2026, 12, 4, 17)
    policy = RoutingPolicy(sla_calendars=(("*", OFFICE),))
    monday = berlin(2026, 12, 7, 9)
    touched = LeadTimes("l1", friday, first_touch_at=monday, first_status_change_at=monday)
    assert breaches(touched, policy, monday) == []
    late = LeadTimes("l1", friday, first_touch_at=monday + SECOND, first_status_change_at=monday)
    [breach] = breaches(late, policy, monday + HOUR)
    assert (breach.kind, breach.took, breach.open) == ("first_touch", 5 * MINUTE + SECOND, False)


def test_a_holiday_is_closed_all_day():
    christmas = OFFICE.__class__(OFFICE.time_zone, OFFICE.shifts, frozenset({date(2026, 12, 25)}))
    thursday = berlin(2026, 12, 24, 16)  # 1 h that day, Friday the 25th closed
    assert deadline(christmas, thursday, 24 * HOUR) == berlin(2026, 12, 30, 16)
    assert deadline(OFFICE, thursday, 24 * HOUR) == berlin(2026, 12, 29, 16)
    assert open_time(christmas, thursday, berlin(2026, 12, 28, 9)) == HOUR


def test_the_us_spring_weekend_moves_the_opening_an_hour_earlier_in_utc():
    office = WorkingHours("America/New_York", (Shift(WEEKDAYS, 9 * 60, 17 * 60),))
    friday = datetime(2026, 3, 6, 16, tzinfo=NEW_YORK)  # 21:00 UTC, EST
    due = deadline(office, friday, 5 * HOUR)
    assert due == datetime(2026, 3, 9, 13, tzinfo=NEW_YORK)
    assert due.astimezone(UTC) == datetime(2026, 3, 9, 17, tzinfo=UTC)  # EDT: UTC-4
    assert open_time(office, friday, due) == 5 * HOUR
    assert open_time(office, friday, friday + 7 * timedelta(days=1)) == 40 * HOUR


def test_openings_over_the_european_changes_follow_the_wall_clock():
    nights = WorkingHours("Europe/Berlin", (Shift(frozenset({5}), 22 * 60, 6 * 60),))
    saturday = berlin(2026, 10, 24, 12)
    assert open_time(nights, saturday, saturday + 2 * timedelta(days=1)) == 9 * HOUR
    spring = WorkingHours("Europe/Berlin", (Shift(frozenset({6}), 2 * 60 + 30, 4 * 60),))
    sunday = berlin(2026, 3, 29)
    # 02:30 never happens that night: open from the jump (03:00 CEST) to 04:00 CEST.
    assert open_time(spring, sunday, sunday + timedelta(days=1)) == HOUR
    assert wall_instant(date(2026, 3, 29), 150, BERLIN) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert wall_instant(date(2026, 10, 25), 150, BERLIN) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_overlapping_shifts_count_once_and_no_calendar_is_the_wall_clock():
    doubled = WorkingHours(
        "UTC", (Shift(WEEKDAYS, 9 * 60, 13 * 60), Shift(WEEKDAYS, 12 * 60, 17 * 60))
    )
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    assert open_time(doubled, monday, monday + timedelta(days=1)) == 8 * HOUR
    assert open_time(None, monday, monday + HOUR) == HOUR
    assert deadline(None, monday, HOUR) == monday + HOUR
    assert open_time(OFFICE, monday + HOUR, monday) == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        open_time(OFFICE, datetime(2026, 12, 7), datetime(2026, 12, 8))


def test_each_queue_times_its_leads_by_its_own_calendar_or_the_default():
    nights = WorkingHours("UTC", (Shift(frozenset(range(7)), 22 * 60, 6 * 60),))
    policy = RoutingPolicy(sla_calendars=(("inbound-APAC", nights), ("*", OFFICE)))
    assert policy.sla_calendar("inbound-APAC") == nights
    assert policy.sla_calendar("inbound-EMEA") == OFFICE
    assert policy.sla_calendar(None) == OFFICE
    assert RoutingPolicy().sla_calendar("inbound-EMEA") is None
    noon = berlin(2026, 12, 7, 12)
    open_lead = LeadTimes("l1", noon, queue="inbound-APAC")
    # Noon to 22:10 UTC: closed in APAC's nights but for the last 10 minutes.
    assert [b.kind for b in breaches(open_lead, policy, berlin(2026, 12, 7, 23, 4))] == []
    [first_touch] = breaches(open_lead, policy, berlin(2026, 12, 7, 23, 6))
    assert (first_touch.took, first_touch.open) == (6 * MINUTE, True)


def test_the_calendars_come_from_the_settings():
    settings = RouterSettings(
        sla_business_hours={
            "*": {
                "time_zone": "Europe/Berlin",
                "shifts": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
                ],
            }
        }
    )
    assert settings.policy().sla_calendar("inbound-AMER") == OFFICE
