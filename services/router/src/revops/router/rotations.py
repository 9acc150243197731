"""The rotation rows: locked per transaction, only the queues a batch uses, in name
order; their pointers moved by the turns taken.

Concurrency: every transaction that may take a turn locks the rows of the rotations it
uses (``SELECT ... FOR UPDATE``); any number of router instances thus take turns one
transaction at a time, and the ``(queue, slot)`` primary key of ``queue_turns`` makes a
reused turn impossible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.db import one_of
from revops.router import models as m
from revops.router.domain.assignment import ae_queue
from revops.router.domain.reps import REGIONS, Region, Rep, Role
from revops.router.domain.rotation import RotationState, Turn
from revops.router.domain.rules import (
    Decision,
    QueueSnapshot,
    inbound_queue,
    members_of,
)
from revops.router.domain.windows import utc_day

_SDR: Role = "SDR"


_AE: Role = "AE"


ALL_QUEUES: tuple[tuple[str, Role, Region], ...] = tuple(
    (name, role, region)
    for region in REGIONS
    for name, role in ((inbound_queue(region), _SDR), (ae_queue(region), _AE))
)


_HELD_QUEUES = "router.held_queues"


async def lock_queues(session: AsyncSession, names: Iterable[str]) -> dict[str, RotationState]:
    """Lock the rotation rows of ``names`` not yet locked by this transaction, in name
    order; returns the state of every rotation the transaction holds (kept current by
    the routing in this transaction). A batch locks only the rotations it uses, and none
    when it routes nothing: other instances' batches of CRM changes never wait on it. Two
    transactions that lock in two steps can deadlock; Postgres then stops one, and the
    runner applies its batch again."""
    held: dict[str, RotationState] = session.info.setdefault(_HELD_QUEUES, {})
    missing = sorted({n for n in names if n not in held})
    if missing:
        q = m.queues
        rows = await session.execute(
            select(q.c.name, q.c.cursor, q.c.rotation)
            .where(one_of(q.c.name, missing))
            .order_by(q.c.name)
            .with_for_update()
        )
        held.update(
            {str(name): RotationState.from_json(int(cursor), value) for name, cursor, value in rows}
        )
    return held


def later(a: RotationState | None, b: RotationState) -> RotationState:
    """The state after the later of two turns (a recorded decision re-applied on rebuild
    never moves a rotation back)."""
    return b if a is None or b.next_slot > a.next_slot else a


def moved_rotation(slot: Any, round_: Any, after: Any) -> dict[str, Any]:
    """A rotation row's new values: only a later state moves it (a recorded decision
    re-applied on rebuild never moves a rotation back)."""
    q = m.queues
    pointer = func.json_build_object("round", round_, "after", after)
    return {
        "cursor": func.greatest(q.c.cursor, slot),
        "rotation": sa.case((slot > q.c.cursor, pointer), else_=q.c.rotation),
    }


async def queue_snapshot(
    session: AsyncSession,
    name: str,
    reps_in_order: Sequence[Rep],
    states: Mapping[str, RotationState],
    day: date,
) -> QueueSnapshot:
    role, region = queue_shape(name)
    members = members_of([r for r in reps_in_order if r.role == role and r.region == region], role)
    counts = await session.execute(
        select(m.queue_turns.c.rep_id, func.count())
        .where(m.queue_turns.c.queue == name, m.queue_turns.c.day == day)
        .group_by(m.queue_turns.c.rep_id)
    )
    state = states.get(name, RotationState())
    return QueueSnapshot(name, members, state, {str(r): int(n) for r, n in counts})


def queue_shape(name: str) -> tuple[Role, Region]:
    for queue_name, role, region in ALL_QUEUES:
        if queue_name == name:
            return role, region
    raise KeyError(f"unknown queue {name!r}")


def turn_taken(
    states: dict[str, RotationState],
    counts: dict[tuple[str, date], dict[str, int]],
    decision: Decision,
    subject_id: str,
    at: datetime,
) -> list[dict[str, Any]]:
    """The turn a decision made now takes in a batch, if any: the rotation's state and
    the rep's count of the day moved for the batch's next lead, and the row to store."""
    turn, queue = decision.turn, decision.queue
    if turn is None or queue is None:
        return []
    states[queue] = later(states.get(queue), turn.after)
    day = utc_day(at)
    of_day = counts.setdefault((queue, day), {})
    of_day[turn.rep_id] = of_day.get(turn.rep_id, 0) + 1
    row = {"queue": queue, "slot": turn.slot, "rep_id": turn.rep_id, "subject_id": subject_id}
    return [{**row, "day": day}]


async def take_turn(
    session: AsyncSession, queue: str, turn: Turn, subject_id: str, at: datetime
) -> None:
    await session.execute(
        m.queue_turns.insert().values(
            queue=queue, slot=turn.slot, rep_id=turn.rep_id, subject_id=subject_id, day=utc_day(at)
        )
    )
    await move_rotations(session, {queue: turn.after})


async def move_rotations(session: AsyncSession, moved: Mapping[str, RotationState]) -> None:
    """Store the rotations' states after turns taken outside ``route_new_people`` (which
    writes its own in its one statement), and keep the transaction's held states."""
    if not moved:
        return
    await session.execute(
        update(m.queues)
        .where(m.queues.c.name == sa.bindparam("moved_name"))
        .values(
            moved_rotation(
                sa.bindparam("moved_slot", type_=sa.BigInteger),
                sa.bindparam("moved_round", type_=sa.Integer),
                sa.bindparam("moved_after", type_=sa.BigInteger),
            )
        ),
        [
            {
                "moved_name": n,
                "moved_slot": s.next_slot,
                "moved_round": s.round,
                "moved_after": s.after,
            }
            for n, s in sorted(moved.items())
        ],
    )
    held = await lock_queues(session, moved)
    for name, state in moved.items():
        held[name] = later(held.get(name), state)


class TakenTurns:
    """Turns taken in the first run, read back from the journal by a rebuild: each stored
    once (a decision published twice names the same slot), with the day it counts on,
    and each rotation moved to the latest of them."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        self.rotations: dict[str, RotationState] = {}

    def add(self, queue: str, turn: Turn, subject_id: str, day: date) -> None:
        # The first on the topic is the one the first run took (a rebuild publishes a
        # lead's latest decision again, dated when the lead arrived).
        self.rows.setdefault(
            (queue, turn.slot),
            {
                "queue": queue,
                "slot": turn.slot,
                "rep_id": turn.rep_id,
                "subject_id": subject_id,
                "day": day,
            },
        )
        self.rotations[queue] = later(self.rotations.get(queue), turn.after)

    async def record(self, session: AsyncSession) -> None:
        if self.rows:
            await session.execute(
                pg_insert(m.queue_turns).on_conflict_do_nothing(), list(self.rows.values())
            )
        await move_rotations(session, self.rotations)
