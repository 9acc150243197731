"""Business hours: the time a calendar is open between two instants, and the instant an
allowance of open time runs out (an SLA counted in business hours).

A calendar is working hours (``working_hours.WorkingHours``): a time zone, weekly open
hours and holidays. Each opening runs from the first instant the calendar's wall clock
shows its start to the first instant it shows its end, so a daylight-saving change
inside an opening makes it an hour shorter (spring) or longer (autumn), as the people on
shift live it; an opening starting in the hour the clocks skip opens when they jump.
Overlapping openings count once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from revops.router.domain.working_hours import WorkingHours, zone

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
# Openings are looked for this many days ahead before an allowance is called endless (a
# calendar of holidays only would never use it up).
_MAX_DAYS_AHEAD = 3660


def open_time(calendar: WorkingHours | None, start: datetime, end: datetime) -> timedelta:
    """How long ``calendar`` is open from ``start`` to ``end`` (None: always open, the
    wall-clock time); nothing when ``end`` is not after ``start``."""
    if end <= start:
        return _ZERO
    if calendar is None:
        return end - start
    total = _ZERO
    for opens, closes in _openings(calendar, start):
        if opens >= end:
            break
        total += max(min(closes, end) - max(opens, start), _ZERO)
    return total


def deadline(calendar: WorkingHours | None, start: datetime, allowed: timedelta) -> datetime:
    """The instant ``allowed`` open time after ``start`` is used up: the SLA's limit. It
    falls at the end of an open stretch, never in a closed one (an allowance used up at
    Friday's close is due then, not on Monday)."""
    if calendar is None or allowed <= _ZERO:
        return start + max(allowed, _ZERO)
    left = allowed
    for opens, closes in _openings(calendar, start):
        stretch = closes - max(opens, start)
        if stretch >= left:
            return max(opens, start) + left
        left -= stretch
    raise ValueError(f"calendar {calendar.time_zone}: no opening within {_MAX_DAYS_AHEAD} days")


def _openings(calendar: WorkingHours, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The openings that end after ``start``, in order, overlapping ones merged."""
    if start.tzinfo is None:
        raise ValueError(f"naive datetime {start!r}: times must be timezone-aware")
    tz = zone(calendar.time_zone)
    first = start.astimezone(tz).date() - _DAY  # last night's shift may still be open
    current: tuple[datetime, datetime] | None = None
    for offset in range(_MAX_DAYS_AHEAD):
        for opens, closes in _day_openings(calendar, first + timedelta(days=offset), tz):
            if closes <= start:
                continue
            if current is not None and opens <= current[1]:
                current = (current[0], max(current[1], closes))
                continue
            if current is not None:
                yield current
            current = (opens, closes)
    if current is not None:
        yield current


def _day_openings(
    calendar: WorkingHours, day: date, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    if day in calendar.holidays:
        return []
    found = []
    for shift in calendar.shifts:
        if day.weekday() in shift.days:
            ends_on = day + _DAY if shift.crosses_midnight else day
            found.append((wall_instant(day, shift.start, tz), wall_instant(ends_on, shift.end, tz)))
    return sorted(found)


@functools.lru_cache(maxsize=65536)
def wall_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) the wall clock of ``tz`` shows ``minute`` of ``day`` or
    later: the first of the two in the autumn's repeated hour, the moment the clocks jump
    for a time the spring night skips."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    # Skipped: the jump is between the wall time read with the offset after it (earlier)
    # and with the offset before it. Transitions fall on whole seconds.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = instant
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
