"""The SLA clock of a stored lead: its times and the queue whose calendar counts them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from revops.router.domain.reps import REGIONS
from revops.router.domain.rules import inbound_queue
from revops.router.domain.sla import LeadTimes


def lead_times(row: Row[Any]) -> LeadTimes:
    """A lead's SLA times; a lead no rotation gave its owner (a recent touch, an open
    opportunity, waiting) is timed by its region's inbound queue."""
    queue = row.queue
    if queue is None or not queue.startswith("inbound-"):
        queue = inbound_queue(row.region) if row.region in REGIONS else None
    return LeadTimes(
        row.id,
        row.created_at,
        row.first_touch_at,
        row.first_status_change_at,
        row.converted_at,
        queue,
    )
