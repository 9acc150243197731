from datetime import UTC, datetime, timedelta

import pytest

from revops.router.domain.rules import RoutingPolicy
from revops.router.domain.sla import LeadTimes, breaches, first_touch_time

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Europe moves its clocks
POLICY = RoutingPolicy()


def kinds(times: LeadTimes, as_of: datetime | None = None) -> list[tuple[str, bool]]:
    return [(b.kind, b.open) for b in breaches(times, POLICY, as_of or T0 + timedelta(days=3))]


def test_first_touch_at_5_minutes_meets_the_target():
    t = LeadTimes("L", T0, T0 + timedelta(minutes=5), T0 + timedelta(hours=1))
    assert kinds(t) == []


def test_first_touch_after_5_minutes_breaches():
    t = LeadTimes("L", T0, T0 + timedelta(minutes=5, seconds=1), T0 + timedelta(hours=1))
    [b] = breaches(t, POLICY, T0 + timedelta(days=3))
    assert (b.kind, b.open, b.took) == ("first_touch", False, timedelta(minutes=5, seconds=1))


def test_status_change_at_24_hours_is_on_time_just_after_breaches():
    touch = T0 + timedelta(minutes=1)
    assert kinds(LeadTimes("L", T0, touch, T0 + timedelta(hours=24))) == []
    late = LeadTimes("L", T0, touch, T0 + timedelta(hours=24, seconds=1))
    assert kinds(late) == [("first_status_change", False)]


def test_open_leads_breach_as_time_passes():
    t = LeadTimes("L", T0)
    assert kinds(t, T0 + timedelta(minutes=5)) == []
    assert kinds(t, T0 + timedelta(minutes=6)) == [("first_touch", True)]
    assert kinds(t, T0 + timedelta(hours=25)) == [
        ("first_touch", True),
        ("first_status_change", True),
    ]


def test_durations_are_absolute_time_across_dst():
    t = LeadTimes("L", T0, T0 + timedelta(hours=2))
    assert first_touch_time(t) == timedelta(hours=2)


def test_touch_logged_before_creation_counts_as_immediate():
    t = LeadTimes("L", T0, T0 - timedelta(minutes=1), T0)
    assert first_touch_time(t) == timedelta(0)
    assert kinds(t) == []


@pytest.mark.parametrize("minutes", [1, 10])
def test_target_is_configurable(minutes):
    policy = RoutingPolicy(first_touch_target=timedelta(minutes=minutes))
    t = LeadTimes("L", T0, T0 + timedelta(minutes=5), T0)
    assert bool(breaches(t, policy, T0)) == (minutes < 5)


# A conversion stops the clocks: converting a lead is working it.


def test_converted_at_5_minutes_without_a_touch_is_no_breach():
    t = LeadTimes("L", T0, converted_at=T0 + timedelta(minutes=5))
    assert kinds(t, T0 + timedelta(days=3)) == []


def test_converted_just_after_5_minutes_without_a_touch_is_a_closed_breach():
    t = LeadTimes("L", T0, converted_at=T0 + timedelta(minutes=5, seconds=1))
    [b] = breaches(t, POLICY, T0 + timedelta(days=3))
    assert (b.kind, b.open, b.took) == ("first_touch", False, timedelta(minutes=5, seconds=1))


def test_a_conversion_ends_the_status_clock_too():
    # Converted after 25 hours, never touched, status never changed: two closed breaches.
    t = LeadTimes("L", T0, converted_at=T0 + timedelta(hours=25))
    assert kinds(t, T0 + timedelta(days=30)) == [
        ("first_touch", False),
        ("first_status_change", False),
    ]


def test_a_touch_after_the_conversion_does_not_make_a_breach():
    t = LeadTimes(
        "L", T0, T0 + timedelta(hours=2), T0 + timedelta(hours=2), T0 + timedelta(minutes=3)
    )
    assert kinds(t) == []


def test_a_conversion_after_as_of_is_not_known_yet():
    t = LeadTimes("L", T0, converted_at=T0 + timedelta(minutes=3))
    # As of 2 minutes nothing is due; as of later the conversion is in the past.
    assert kinds(t, T0 + timedelta(minutes=2)) == []
    late = LeadTimes("L", T0, converted_at=T0 + timedelta(minutes=8))
    assert kinds(late, T0 + timedelta(minutes=7)) == [("first_touch", True)]
    assert kinds(late, T0 + timedelta(minutes=9)) == [("first_touch", False)]
