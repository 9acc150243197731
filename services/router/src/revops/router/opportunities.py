"""Opportunity changes: merged field by field with what is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import bulk
from revops.events.catalogue import (
    OpportunityChangedEvent,
)
from revops.events.db import one_of
from revops.router import models as m
from revops.router.domain.merge import merge_fields, stamp, stamps_of

_OPPORTUNITY_COLUMNS = ("account_id", "owner_id", "is_closed", "is_won", "created_at", "close_date")


async def on_opportunities_changed(
    session: AsyncSession, events: Sequence[OpportunityChangedEvent]
) -> None:
    """A run of opportunity changes, merged field by field with what is stored (the
    newest change of each field wins, whatever the arrival order): the opportunities
    deleted in the run are deleted, then every other one touched is written whole."""
    ids = sorted({e.payload.opportunity_id for e in events})
    table = m.opportunities
    rows: dict[str, dict[str, Any] | None] = {
        row.id: dict(row._mapping)
        for row in await session.execute(select(table).where(one_of(table.c.id, ids)))
    }
    stamps = {o: stamps_of(row["field_times"]) for o, row in rows.items() if row is not None}
    deleted: set[str] = set()
    for event in events:
        p = event.payload
        if p.change == "deleted":
            rows[p.opportunity_id] = None
            stamps[p.opportunity_id] = {}
            deleted.add(p.opportunity_id)
            continue
        row = rows.get(p.opportunity_id)
        if row is None:
            row = rows[p.opportunity_id] = {
                **dict.fromkeys(c.name for c in table.c),
                "id": p.opportunity_id,
                "is_closed": False,
            }
        fields = stamps.setdefault(p.opportunity_id, {})
        change = {c: getattr(p, c) for c in _OPPORTUNITY_COLUMNS}
        merge_fields(row, fields, change, stamp(event.occurred_at, event.id))
        row["field_times"] = {name: list(s) for name, s in sorted(fields.items())}
    if deleted:
        await session.execute(delete(table).where(one_of(table.c.id, sorted(deleted))))
    written = [row for row in rows.values() if row is not None and row["id"] in ids]
    if written:
        names = tuple(c.name for c in table.c)
        await session.execute(bulk.upsert(table, names), bulk.arrays(table, names, written))
