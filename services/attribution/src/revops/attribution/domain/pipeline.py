"""Which opportunities are qualified pipeline, for the pipeline-by-source report.

RULES.md: an opportunity is qualified from the moment it first reaches stage 2 or
beyond, and stays qualified (a later Closed Lost does not unqualify its history).
Stage names carry their number ("2 - Qualified", "Stage 3 - Proposal"); Salesforce's
and HubSpot's standard names without one are ranked below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

QUALIFIED_STAGE = 2

STANDARD_STAGE_RANKS: Mapping[str, int] = {
    # Salesforce's default opportunity stages.
    "prospecting": 1,
    "qualification": 2,
    "needs analysis": 2,
    "value proposition": 3,
    "id. decision makers": 3,
    "perception analysis": 4,
    "proposal/price quote": 4,
    "negotiation/review": 5,
    "closed won": 6,
    # HubSpot's default deal stages (internal ids).
    "appointmentscheduled": 1,
    "qualifiedtobuy": 2,
    "presentationscheduled": 3,
    "decisionmakerboughtin": 4,
    "contractsent": 5,
    "closedwon": 6,
}

_NUMBERED = re.compile(r"^\s*(?:stage\s*)?(\d+)\b", re.IGNORECASE)


def stage_rank(stage: str | None, ranks: Mapping[str, int] = STANDARD_STAGE_RANKS) -> int | None:
    """The stage's number; None for an unknown stage or a lost one."""
    if not stage:
        return None
    numbered = _NUMBERED.match(stage)
    if numbered:
        return int(numbered.group(1))
    return ranks.get(stage.strip().lower())


def qualified_at(
    current: datetime | None, stage: str | None, occurred_at: datetime
) -> datetime | None:
    """When the opportunity first reached stage 2 or beyond, given a stage seen at
    `occurred_at`: the earliest such time wins whatever order the events arrive in."""
    rank = stage_rank(stage)
    if rank is None or rank < QUALIFIED_STAGE:
        return current
    return occurred_at if current is None else min(current, occurred_at)
