"""The fair rotation of a queue, as a pure function over a turn cursor.

The cycle lists every member once per unit of weight, interleaved (weights 1, 1, 2 ->
A B C C; weights 2, 1, 2 -> A B C A C), in the members' strict order. The state is
one integer, ``cursor``: how many slots of the endless repetition of the cycle have
been passed. A turn takes the first slot at or after the cursor whose member may take
it and moves the cursor just past that slot; a member who may not (paused, out of
office, at their daily cap, ...) is passed over and keeps their place, so they get their
next slot as usual. The database keeps the cursor in one row per queue, locked while
it is advanced, so a slot is never used twice and the slot index (``Turn.slot``) can be
stored as a unique key of the assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    rep_id: str
    weight: int = 1
    available: bool = True  # False: paused, away, inactive, uncertified, consultant...
    daily_cap: int | None = None

    def may_take(self, assigned_today: int) -> bool:
        if not self.available or self.weight <= 0:
            return False
        return self.daily_cap is None or assigned_today < self.daily_cap


@dataclass(frozen=True)
class Turn:
    rep_id: str
    slot: int  # the absolute slot taken: unique per queue, forever
    cursor: int  # the state to save: the next turn starts here


def cycle(members: Sequence[Member]) -> list[str]:
    """One full cycle of slots, each naming the member who owns it."""
    rounds = max((m.weight for m in members), default=0)
    return [m.rep_id for r in range(rounds) for m in members if m.weight > r]


def next_turn(
    members: Sequence[Member],
    cursor: int,
    assigned_today: Mapping[str, int],
) -> Turn | None:
    """The next turn of the rotation, or None when nobody may take one.

    ``assigned_today`` counts this queue's assignments per rep on the lead's day (the
    caller's choice of day boundary); with None returned the cursor must stay as is,
    so an empty queue uses up nobody's place.
    """
    if cursor < 0:
        raise ValueError(f"cursor must be >= 0, got {cursor}")
    slots = cycle(members)
    by_id = {m.rep_id: m for m in members}
    if len(by_id) != len(members):
        raise ValueError("a rep appears twice in one rotation")
    for slot in range(cursor, cursor + len(slots)):
        rep_id = slots[slot % len(slots)]
        if by_id[rep_id].may_take(assigned_today.get(rep_id, 0)):
            return Turn(rep_id=rep_id, slot=slot, cursor=slot + 1)
    return None


def take_turns(
    members: Sequence[Member],
    cursor: int,
    assigned_today: Mapping[str, int],
    count: int,
) -> tuple[list[Turn | None], int]:
    """``count`` consecutive turns (a batch of leads on one day), and the cursor after.

    Each turn sees the caps used by the ones before it, so a batch never overshoots a cap
    and never takes a slot twice.
    """
    counts = dict(assigned_today)
    turns: list[Turn | None] = []
    for _ in range(count):
        turn = next_turn(members, cursor, counts)
        turns.append(turn)
        if turn is not None:
            cursor = turn.cursor
            counts[turn.rep_id] = counts.get(turn.rep_id, 0) + 1
    return turns, cursor
