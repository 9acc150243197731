"""Lead SLAs: the first touch target and the first status change limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from revops.router.domain.business_hours import deadline, open_time
from revops.router.domain.rules import RoutingPolicy

SlaKind = Literal["first_touch", "first_status_change"]


@dataclass(frozen=True)
class LeadTimes:
    lead_id: str
    created_at: datetime
    first_touch_at: datetime | None = None
    first_status_change_at: datetime | None = None
    converted_at: datetime | None = None
    # The queue whose calendar times the SLAs (its region's inbound queue when the lead
    # was not routed by a rotation); None: the policy's "*" calendar, if any.
    queue: str | None = None


@dataclass(frozen=True)
class Breach:
    lead_id: str
    kind: SlaKind
    allowed: timedelta
    took: timedelta  # so far, when still open
    open: bool  # nothing happened yet: the breach grows until something does


def elapsed(start: datetime, end: datetime | None) -> timedelta | None:
    # A touch logged before the lead existed (a late event) counts as immediate.
    return None if end is None else max(end - start, timedelta(0))


def first_touch_time(times: LeadTimes) -> timedelta | None:
    return elapsed(times.created_at, times.first_touch_at)


def breaches(times: LeadTimes, policy: RoutingPolicy, as_of: datetime) -> list[Breach]:
    """The SLAs this lead misses, as of ``as_of`` for the ones not met yet.

    Exactly at the limit is on time (5:00 meets the 5-minute target, 5:01 does not).
    With a business-hours calendar for the lead's queue, only its open time counts (a
    lead at 16:58 on Friday with a 17:00 close and a 5-minute target is due at 09:03 on
    Monday), and ``took`` is open time too.
    A conversion (by ``as_of``) stops both clocks: the lead has been worked, so a lead
    converted within the limit without a touch breaches nothing, and one converted after
    it is a closed breach that took until the conversion, never an open one.
    """
    found: list[Breach] = []
    converted = times.converted_at
    if converted is not None and converted > as_of:
        converted = None  # not converted yet as of then
    checks: tuple[tuple[SlaKind, datetime | None, timedelta], ...] = (
        ("first_touch", times.first_touch_at, policy.first_touch_target),
        ("first_status_change", times.first_status_change_at, policy.first_status_change_limit),
    )
    calendar = policy.sla_calendar(times.queue)
    for kind, happened, allowed in checks:
        happened_at = _first_of(happened, converted)
        end = happened_at if happened_at is not None else as_of
        if deadline(calendar, times.created_at, allowed) >= end:
            continue  # on time; cheap for a lead open for months
        took = open_time(calendar, times.created_at, end)
        # Past the deadline only by closed time (due at Friday's close, touched on
        # Monday at the opening) is on time.
        if took > allowed:
            found.append(Breach(times.lead_id, kind, allowed, took, happened_at is None))
    return found


def _first_of(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
