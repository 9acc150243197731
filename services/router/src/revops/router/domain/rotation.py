"""The fair rotation of a queue: a pointer over the roster in its fixed order.

Every rep has a fixed place in the roster (the order reps were added), and a weight. A
cycle is ``max weight`` rounds; a rep of weight w takes part in rounds 0 to w-1, so in one
cycle it takes w turns (weights 1, 1, 2 give A B C | C). The state is a pointer: the round
and the place of the last rep served. A turn goes to the first rep after the pointer, in
place order, who takes part in the round and may take a turn now; past the last place the
pointer moves to the next round.

Because the pointer names a place, not a position in a list, a change of the roster
re-maps nothing: a rep added comes when the pointer reaches their place (at the end of
the round for a new rep); a rep paused, away or at their daily cap is passed over and
keeps their place, so they come again when the pointer next reaches it; a weight change
only changes the rounds a rep takes part in. So nobody gets two turns in a row while an
eligible teammate of equal weight waits, whatever changed, and over every whole cycle
each eligible rep gets exactly their weight in turns. (Turns of different weights are
not spread within a cycle: weights 1 and 3 give A D | D | D.)

Each turn also takes the next slot, a number unique per queue for ever, which the
database uses as the key of the turn: a slot can never be used twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Member:
    rep_id: str
    weight: int = 1
    available: bool = True  # False: paused, away, inactive, uncertified...
    daily_cap: int | None = None
    # The rep's fixed place in the roster (its position); None: its index in the list.
    place: int | None = None

    def may_take(self, assigned_today: int) -> bool:
        if not self.available or self.weight <= 0:
            return False
        return self.daily_cap is None or assigned_today < self.daily_cap


@dataclass(frozen=True)
class RotationState:
    next_slot: int = 0  # the slot the next turn takes
    round: int = 0  # the round of the cycle the pointer is in
    after: int = -1  # the place of the last rep served in that round; -1: none yet

    def __post_init__(self) -> None:
        if self.next_slot < 0 or self.round < 0:
            raise ValueError(f"a rotation state counts from 0, got {self}")

    def to_json(self) -> dict[str, int]:
        """What the database keeps beside the slot counter."""
        return {"round": self.round, "after": self.after}

    @classmethod
    def from_json(cls, next_slot: int, value: Mapping[str, Any] | None) -> RotationState:
        value = value or {}
        return cls(next_slot, int(value.get("round", 0)), int(value.get("after", -1)))


@dataclass(frozen=True)
class Turn:
    rep_id: str
    slot: int  # the slot taken: unique per queue, for ever
    after: RotationState  # the state to store: the next turn starts there

    @property
    def cursor(self) -> int:
        return self.after.next_slot


def in_place_order(members: Sequence[Member]) -> list[tuple[int, Member]]:
    placed = [(m.place if m.place is not None else i, m) for i, m in enumerate(members)]
    if len({m.rep_id for _, m in placed}) != len(placed):
        raise ValueError("a rep appears twice in one rotation")
    if len({place for place, _ in placed}) != len(placed):
        raise ValueError("two reps share one place in a rotation")
    return sorted(placed, key=lambda pm: pm[0])


def next_turn(
    members: Sequence[Member], state: RotationState, assigned_today: Mapping[str, int]
) -> Turn | None:
    """The next turn of the rotation, or None when nobody may take one (the state must
    then stay as it is, so an empty queue uses up nobody's place).

    ``assigned_today`` counts this queue's assignments per rep on the lead's day (the
    caller's choice of day boundary).
    """
    placed = in_place_order(members)
    rounds = max((m.weight for _, m in placed), default=0)
    if rounds <= 0:
        return None
    first = state.round % rounds  # fewer rounds since the weights changed: wrap
    # One pass over every round from the pointer, and back to the pointer's own round
    # for the places before it.
    for step in range(rounds + 1):
        round_ = (first + step) % rounds
        after = state.after if step == 0 else -1
        for place, m in placed:
            if place > after and m.weight > round_ and m.may_take(assigned_today.get(m.rep_id, 0)):
                return Turn(
                    m.rep_id, state.next_slot, RotationState(state.next_slot + 1, round_, place)
                )
    return None


def take_turns(
    members: Sequence[Member],
    state: RotationState,
    assigned_today: Mapping[str, int],
    count: int,
) -> tuple[list[Turn | None], RotationState]:
    """``count`` consecutive turns (a batch of leads on one day), and the state after.

    Each turn sees the caps used by the ones before it, so a batch never overshoots a cap.
    """
    counts = dict(assigned_today)
    turns: list[Turn | None] = []
    for _ in range(count):
        turn = next_turn(members, state, counts)
        turns.append(turn)
        if turn is not None:
            state = turn.after
            counts[turn.rep_id] = counts.get(turn.rep_id, 0) + 1
    return turns, state
