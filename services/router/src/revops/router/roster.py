"""The roster: reps as the ``rep.changed`` events on the roster topic make them.

The reps API publishes each change and the router applies it here like any other state,
so a rebuild from the topics brings the roster back. The roster topic has one partition:
its order is the order the changes were acknowledged, and it decides everything here
(which change is the newest, the order reps were created), never ``occurred_at``, which
comes from the clocks of several API instances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import RepChanged, RepChangedEvent
from revops.router import models as m

# Where consumer.load_reps keeps the reps it loaded for the rest of a batch.
REPS_CACHE = "router.reps"

REP_COLUMNS: tuple[str, ...] = tuple(
    name for name in RepChanged.model_fields if name != "change" and name in m.reps.c
)


async def apply_rep_changes(session: AsyncSession, events: Sequence[RepChangedEvent]) -> None:
    """Store the reps as their newest changes in ``events`` leave them, in one upsert.

    A rep new to the table is inserted in the order of its first change in ``events``,
    so the position its identity column gives it follows the topic's order (the order
    reps were created); a known rep keeps its position and its ``created_at``. A second
    ``created`` of a known id (two concurrent creates both published) is applied as an
    update: the last acknowledged change wins, as for any two changes.
    """
    if not events:
        return
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        rep = event.payload
        first = rows.get(rep.id)
        # Updating a key keeps its place in the dict: rows stay in first-change order.
        rows[rep.id] = {
            **{column: getattr(rep, column) for column in REP_COLUMNS},
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
    # Many rows, one statement each, in order: a new rep's position is drawn in turn.
    await session.execute(stmt, list(rows.values()))
    # Routing later in this batch must see the reps as they are now.
    session.info.pop(REPS_CACHE, None)
