"""When a rep change may unblock the leads waiting because nobody could take them."""

from __future__ import annotations

from collections.abc import Mapping

from revops.router.domain.reps import Region, Rep, Role

_SDR: Role = "SDR"


def may_take_more(before: Rep | None, after: Rep) -> bool:
    """Whether ``after`` may take inbound turns that ``before`` (the same rep as it was;
    None: not in the roster yet) could not: added, resumed, certified, back from out of
    office, activated, a weight from 0, moved into the region, or a daily cap raised or
    lifted (a rep at their cap may take more)."""
    if not after.in_rotation(_SDR) or after.region is None:
        return False
    if before is None or not before.in_rotation(_SDR) or before.region != after.region:
        return True
    if before.daily_cap is None:
        return False
    return after.daily_cap is None or after.daily_cap > before.daily_cap


def regions_gaining_reps(
    before: Mapping[str, Rep], after: Mapping[str, Rep]
) -> dict[Region, list[str]]:
    """The regions whose inbound queue gained someone who may take leads, with who."""
    gained: dict[Region, list[str]] = {}
    for rep_id, rep in after.items():
        if rep.region is not None and may_take_more(before.get(rep_id), rep):
            gained.setdefault(rep.region, []).append(rep_id)
    return gained
