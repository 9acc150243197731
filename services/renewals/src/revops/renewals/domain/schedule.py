"""When the weekly forecast snapshot is due: a local day and time in the company's zone.

18:00 in Los Angeles is 01:00 UTC in summer and 02:00 UTC in winter; the schedule is
kept in local time and converted per week, so the snapshot stays at 18:00 local on both
sides of a daylight saving change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

FRIDAY = 4  # date.weekday()


@dataclass(frozen=True)
class SnapshotSchedule:
    weekday: int = FRIDAY
    at: time = time(18, 0)
    timezone: str = "America/Los_Angeles"

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) .. 6 (Sunday), not {self.weekday}")
        ZoneInfo(self.timezone)  # an unknown zone fails at start-up, not at 18:00 on Friday

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def occurrence(self, day: date) -> datetime:
        """The UTC moment of the snapshot on local ``day``.

        A local time that does not exist that day (skipped by the spring change) is
        read with the offset before the change, i.e. an hour later on the new clock; one
        that happens twice (autumn) is the first of the two.
        """
        local = datetime.combine(day, self.at, tzinfo=self.zone)
        return local.astimezone(UTC)

    def next_scheduled_at(self, after: datetime) -> datetime:
        """The first scheduled time strictly after ``after``."""
        local_day = _aware(after).astimezone(self.zone).date()
        start = local_day - timedelta(days=1)  # one day of slack either side of a change
        for offset in range(9):
            day = start + timedelta(days=offset)
            if day.weekday() == self.weekday:
                moment = self.occurrence(day)
                if moment > after:
                    return moment
        raise AssertionError("a weekday recurs within 9 days")  # pragma: no cover

    def previous_scheduled_at(self, at_or_before: datetime) -> datetime:
        """The last scheduled time at or before the given moment."""
        local_day = _aware(at_or_before).astimezone(self.zone).date()
        for offset in range(-1, 9):
            day = local_day - timedelta(days=offset)
            if day.weekday() == self.weekday:
                moment = self.occurrence(day)
                if moment <= at_or_before:
                    return moment
        raise AssertionError("a weekday recurs within 9 days")  # pragma: no cover

    def scheduled_times_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every scheduled time in (start, end]: the snapshots a stopped service missed."""
        times: list[datetime] = []
        moment = self.next_scheduled_at(start)
        while moment <= end:
            times.append(moment)
            moment = self.next_scheduled_at(moment)
        return times


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return moment
