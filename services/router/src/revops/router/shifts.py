"""Working hours in the router: the reps API's field, and the leads that waited for
nobody on shift routed when someone comes on shift.

A rep's working hours are part of the rep (``rep.changed``), so a reset or a replay
rebuilds them with the roster. Coming on shift is no event: the router looks every
``SHIFT_CHECK_S`` for reps on shift now who were not at its previous look (at start:
every rep with working hours on shift), and routes the waiting leads of their regions as
``waiting.route_waiting_leads_of`` does when a rep comes back from out of office, decided
as of that look. Those decisions are ``lead.routed`` events like any re-route, so a
rebuild keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.consumer import is_infrastructure_error
from revops.events.service import ServiceRuntime
from revops.events.working_hours import Shift, WorkingHours
from revops.router.context import RouterContext
from revops.router.domain.eligibility import regions_coming_on_shift
from revops.router.store import load_reps
from revops.router.waiting import route_waiting_leads_of

log = logging.getLogger(__name__)

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ShiftIn(Shift):
    model_config = _STRICT


class WorkingHoursIn(WorkingHours):
    """Working hours as the API takes them: a field it does not know is refused."""

    model_config = _STRICT
    shifts: list[ShiftIn] = Field(  # type: ignore[assignment]
        min_length=1, max_length=50, description="the weekly shifts"
    )


_DESCRIBED = (
    "When the rep is on shift, on their own wall clock: "
    '{"time_zone": "Europe/Berlin", "shifts": [{"days": ["mon", "tue", "wed", "thu", '
    '"fri"], "start": "09:00", "end": "17:30"}], "holidays": ["2026-12-25"]}. '
    "Outside a shift the rotation passes the rep over and they keep their place; an end "
    "before the start crosses midnight. Null: on shift around the clock."
)


class WorkingHoursField(BaseModel):
    """The reps API's working hours (a create or a change)."""

    working_hours: WorkingHoursIn | None = Field(default=None, description=_DESCRIBED)


class WorkingHoursOut(BaseModel):
    working_hours: WorkingHours | None = Field(default=None, description=_DESCRIBED)


async def route_leads_coming_on_shift(
    session: AsyncSession, ctx: RouterContext, since: datetime | None, now: datetime
) -> list[str]:
    """Route the leads waiting in the regions where someone came on shift between
    ``since`` and ``now``, as of ``now``; the ids of the leads now routed."""
    coming = regions_coming_on_shift(await load_reps(session), since, now)
    if not coming:
        return []
    routed = await route_waiting_leads_of(session, ctx, sorted(coming), now)
    if routed:
        log.info(
            "routed waiting leads as reps came on shift",
            extra={"regions": sorted(coming), "leads": len(routed)},
        )
    return routed


async def watch_shifts(runtime: ServiceRuntime) -> None:
    """The router's background look for reps coming on shift (``SHIFT_CHECK_S``)."""
    ctx = runtime.context
    assert isinstance(ctx, RouterContext)
    since: datetime | None = None
    while not runtime.stopping.is_set():
        now = datetime.now(UTC)
        try:
            async with runtime.database.transaction() as session:
                routed = await route_leads_coming_on_shift(session, ctx, since, now)
            since = now
            if routed:
                runtime.relay.wake()
        except Exception as exc:
            # Postgres away, or a deadlock with a batch: the next look tries again from
            # the same ``since``, so nobody's coming on shift is missed.
            level = logging.WARNING if is_infrastructure_error(exc) else logging.ERROR
            log.log(level, "routing leads as reps come on shift failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), ctx.settings.shift_check_s)
