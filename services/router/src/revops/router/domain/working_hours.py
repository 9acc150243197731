"""Working hours: when a rep is on shift, read on the rep's own wall clock.

A shift runs from ``start`` to ``end`` on each of its days, in the rep's time zone; an
``end`` at or before ``start`` (22:00-06:00) crosses midnight and belongs to the day it
starts on. A holiday cancels the shifts that start on it (the tail of the night shift
that started the evening before still runs). The wall clock decides, as the rep lives
it: in the spring-forward night a shift from 02:30 begins when the clocks jump to 03:00,
and in the autumn night the hour that happens twice is on shift both times when it is
inside a shift. A rep without working hours is on shift around the clock (the rotation
as it was before working hours existed).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_A_DAY = 24 * 60


@dataclass(frozen=True)
class Shift:
    days: frozenset[int]  # the weekdays (0 Monday .. 6 Sunday) the shift starts on
    start: int  # minutes after local midnight, 0 .. 1439
    end: int  # 1 .. 1440; at or before ``start``: the shift ends the next day

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError(f"shift days must be weekdays 0..6, got {sorted(self.days)}")
        if not 0 <= self.start < MINUTES_A_DAY or not 0 < self.end <= MINUTES_A_DAY:
            raise ValueError(f"shift {self.start}-{self.end}: minutes out of the day")
        if self.start == self.end:
            raise ValueError("a shift must not start and end at the same minute")

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start


@dataclass(frozen=True)
class WorkingHours:
    time_zone: str  # an IANA name: Europe/Berlin, America/New_York
    shifts: tuple[Shift, ...]
    holidays: frozenset[date] = frozenset()  # local dates no shift starts on

    def __post_init__(self) -> None:
        zone(self.time_zone)  # refuses a name the time zone database does not know
        if not self.shifts:
            raise ValueError("working hours need at least one shift")


@functools.lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from e


def _minute_of(moment: datetime) -> float:
    wall = moment.time()
    return wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60


def on_shift(hours: WorkingHours | None, at: datetime) -> bool:
    """Whether the rep is on shift at the instant ``at`` (timezone-aware).

    Start included, end excluded: a 09:00-17:00 shift is on at 09:00:00 and 16:59:59,
    off at 08:59:59 and 17:00:00.
    """
    if hours is None:
        return True
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: times must be timezone-aware")
    local = at.astimezone(zone(hours.time_zone))
    today, minute = local.date(), _minute_of(local)
    yesterday = today - timedelta(days=1)
    for shift in hours.shifts:
        if _works(hours, shift, today):
            until = shift.end if not shift.crosses_midnight else MINUTES_A_DAY
            if shift.start <= minute < until:
                return True
        if shift.crosses_midnight and _works(hours, shift, yesterday) and minute < shift.end:
            return True
    return False


def _works(hours: WorkingHours, shift: Shift, day: date) -> bool:
    return day.weekday() in shift.days and day not in hours.holidays


def working_hours_of(data: Mapping[str, Any] | None) -> WorkingHours | None:
    """Working hours from their JSON form (the rep's event and column), None for none:

    ``{"time_zone": "Europe/Berlin", "holidays": ["2026-12-25"],
    "shifts": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:30"}]}``
    """
    if data is None:
        return None
    return _parsed(
        str(data["time_zone"]),
        tuple(
            (tuple(str(d) for d in s["days"]), str(s["start"]), str(s["end"]))
            for s in data["shifts"]
        ),
        tuple(str(d) for d in data.get("holidays") or ()),
    )


@functools.lru_cache(maxsize=1024)
def _parsed(
    time_zone: str, shifts: tuple[tuple[tuple[str, ...], str, str], ...], holidays: tuple[str, ...]
) -> WorkingHours:
    # Cached: every batch loads the roster, and the same few rosters parse the same.
    return WorkingHours(
        time_zone,
        tuple(
            Shift(weekdays(days), clock_minute(start), clock_minute(end))
            for days, start, end in shifts
        ),
        frozenset(date.fromisoformat(d) for d in holidays),
    )


def weekdays(names: Iterable[str]) -> frozenset[int]:
    found = set()
    for name in names:
        key = name.strip().lower()[:3]
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {name!r} (one of {', '.join(WEEKDAYS)})")
        found.add(WEEKDAYS.index(key))
    return frozenset(found)


def clock_minute(text: str) -> int:
    """``"HH:MM"`` as minutes after midnight; ``"24:00"`` is the end of the day."""
    if text == "24:00":
        return MINUTES_A_DAY
    try:
        wall = time.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"time {text!r} is not HH:MM") from e
    if wall.second or wall.microsecond:
        raise ValueError(f"time {text!r}: shifts start and end on a minute")
    return wall.hour * 60 + wall.minute
