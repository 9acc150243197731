"""The roster: reps as the ``rep.changed`` events on the roster topic make them.

The reps API publishes each change and the router applies it here like any other state,
so a rebuild from the topics brings the roster back. The roster topic has one partition:
its order is the order the changes were acknowledged, and it decides everything here
(which change is the newest, the order reps were created), never ``occurred_at``, which
comes from the clocks of several API instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import RepChanged, RepChangedEvent
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.domain.eligibility import regions_gaining_reps
from revops.router.domain.reps import Rep
from revops.router.domain.working_hours import working_hours_of
from revops.router.waiting import route_waiting_leads_of
from revops.router.writeback import requeue_writebacks_of

# Where consumer.load_reps keeps the reps it loaded for the rest of a batch.
REPS_CACHE = "router.reps"

REP_COLUMNS: tuple[str, ...] = tuple(
    name for name in RepChanged.model_fields if name != "change" and name in m.reps.c
)


async def apply_rep_changes(
    session: AsyncSession, events: Sequence[RepChangedEvent], ctx: RouterContext | None = None
) -> None:
    """Store the reps as their newest changes in ``events`` leave them, in one upsert.

    A rep new to the table is inserted in the order of its first change in ``events``,
    so the position its identity column gives it follows the topic's order (the order
    reps were created); a known rep keeps its position and its ``created_at``. A second
    ``created`` of a known id (two concurrent creates both published) is applied as an
    update: the last acknowledged change wins, as for any two changes.

    With ``ctx``, a change that lets a rep take inbound leads they could not take before
    routes the leads waiting in ``unassigned`` for nobody eligible in that region, in
    this transaction (``waiting.route_waiting_leads_of``).
    """
    if not events:
        return
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        rep = event.payload
        first = rows.get(rep.id)
        # Updating a key keeps its place in the dict: rows stay in first-change order.
        rows[rep.id] = {
            **rep.model_dump(mode="json", include=set(REP_COLUMNS)),
            "created_at": first["created_at"] if first else event.occurred_at,
            "updated_at": event.occurred_at,
        }
    stmt = pg_insert(m.reps)
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            column: stmt.excluded[column]
            for column in (*REP_COLUMNS, "updated_at")
            if column != "id"
        },
    )
    stored = await _stored_reps(session, rows)
    # Many rows, one statement each, in order: a new rep's position is drawn in turn.
    await session.execute(stmt, list(rows.values()))
    # Routing later in this batch must see the reps as they are now.
    session.info.pop(REPS_CACHE, None)
    for rep_id in crm_ids_set(stored, rows):
        # Sent once this batch commits: the relay wakes on every commit of the consumer.
        await requeue_writebacks_of(session, rep_id)
    if ctx is not None:
        before = {rep_id: _rep(row) for rep_id, row in stored.items()}
        after = {rep_id: _rep(row) for rep_id, row in rows.items()}
        # Working hours are read at the newest change's time: the batch's changes are
        # moments apart.
        newest: datetime = max(row["updated_at"] for row in rows.values())
        gained = regions_gaining_reps(before, after, newest)
        if gained:
            # Decided as of the newest of the changes that let someone take leads.
            at: datetime = max(rows[i]["updated_at"] for ids in gained.values() for i in ids)
            await route_waiting_leads_of(session, ctx, sorted(gained), at)


async def _stored_reps(
    session: AsyncSession, rows: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """The reps about to change, as they are before the change (new reps are absent)."""
    found = await session.execute(select(m.reps).where(one_of(m.reps.c.id, sorted(rows))))
    return {str(r.id): dict(r._mapping) for r in found}


CRM_ID_COLUMNS = ("hubspot_owner_id", "salesforce_user_id")


def crm_ids_set(
    stored: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """The reps given a user in a CRM they did not have (a new rep with one, too): their
    failed write-backs ("has no hubspot_owner_id", "is unknown") can go now."""
    return [
        rep_id
        for rep_id, row in rows.items()
        if any(
            row[c] and (rep_id not in stored or stored[rep_id][c] != row[c]) for c in CRM_ID_COLUMNS
        )
    ]


def _rep(row: Mapping[Any, Any]) -> Rep:
    return Rep(
        id=row["id"],
        role=row["role"],
        region=row["region"],
        name=row["name"] or "",
        active=row["active"],
        certified=row["certified"],
        consultant=row["consultant"],
        paused=row["paused"],
        out_of_office=row["out_of_office"],
        weight=row["weight"],
        daily_cap=row["daily_cap"],
        paired_sdr_id=row["paired_sdr_id"],
        hours=working_hours_of(row.get("working_hours")),
    )
