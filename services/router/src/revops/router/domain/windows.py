"""How the rules count days: calendar days in UTC, both ends of a window included.

"In the past 30 days" of a lead on 2026-04-01 covers touches from 2026-03-02 (30
days before: counts) to the lead itself; 2026-03-01 (31 days) does not. Counting
whole days, as the handbook's people do ("from day 15"), keeps a touch late in the
evening from falling out of a window a person would read as including it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_day(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: times must be timezone-aware")
    return moment.astimezone(UTC).date()


def days_between(earlier: datetime | date, later: datetime | date) -> int:
    start = utc_day(earlier) if isinstance(earlier, datetime) else earlier
    end = utc_day(later) if isinstance(later, datetime) else later
    return (end - start).days


def within_days(moment: datetime | date, as_of: datetime, days: int) -> bool:
    """``moment`` is at or before ``as_of`` and at most ``days`` calendar days before it.

    Anything after ``as_of`` is out: a rule decided at a lead's time cannot see the
    future, which is what makes replays agree with the first run.
    """
    if isinstance(moment, datetime):
        if moment > as_of:
            return False
    elif moment > utc_day(as_of):
        return False
    return days_between(moment, as_of) <= days
