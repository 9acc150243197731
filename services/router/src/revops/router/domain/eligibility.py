"""When a rep change, or a shift beginning, may unblock the leads waiting because nobody
could take them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from revops.router.domain.reps import Region, Rep, Role

_SDR: Role = "SDR"


def may_take_more(before: Rep | None, after: Rep, at: datetime | None = None) -> bool:
    """Whether ``after`` may take inbound turns that ``before`` (the same rep as it was;
    None: not in the roster yet) could not: added, resumed, certified, back from out of
    office, activated, a weight from 0, moved into the region, working hours that put
    them on shift at ``at`` (the change's time), or a daily cap raised or lifted (a rep at
    their cap may take more)."""
    if not after.in_rotation(_SDR, at) or after.region is None:
        return False
    if before is None or not before.in_rotation(_SDR, at) or before.region != after.region:
        return True
    if before.daily_cap is None:
        return False
    return after.daily_cap is None or after.daily_cap > before.daily_cap


def regions_gaining_reps(
    before: Mapping[str, Rep], after: Mapping[str, Rep], at: datetime | None = None
) -> dict[Region, list[str]]:
    """The regions whose inbound queue gained someone who may take leads, with who."""
    gained: dict[Region, list[str]] = {}
    for rep_id, rep in after.items():
        if rep.region is not None and may_take_more(before.get(rep_id), rep, at):
            gained.setdefault(rep.region, []).append(rep_id)
    return gained


def regions_coming_on_shift(
    reps: Iterable[Rep], since: datetime | None, now: datetime
) -> dict[Region, list[str]]:
    """The regions whose inbound queue has a rep with working hours who is on shift at
    ``now`` and was not at ``since`` (None: not known, as when the router starts), with
    who. Reps without working hours are always on shift: they never come on shift."""
    found: dict[Region, list[str]] = {}
    for rep in reps:
        if rep.hours is None or rep.region is None or not rep.in_rotation(_SDR, now):
            continue
        if since is None or not rep.in_rotation(_SDR, since):
            found.setdefault(rep.region, []).append(rep.id)
    return found
