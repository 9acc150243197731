from collections import Counter

import pytest

from revops.router.domain.rotation import Member, RotationState, Turn, next_turn, take_turns

A, B, C = Member("A"), Member("B"), Member("C", weight=2)
P = Member("P", available=False)  # paused
START = RotationState()


def run(
    members: list[Member],
    n: int,
    state: RotationState = START,
    counts: dict[str, int] | None = None,
) -> tuple[list[Turn | None], RotationState]:
    return take_turns(members, state, counts or {}, n)


def taken(turns: list[Turn | None]) -> list[Turn]:
    """The turns of a run in which every lead found a rep."""
    assert None not in turns
    return [t for t in turns if t is not None]


def names(turns: list[Turn | None]) -> list[str | None]:
    return [t.rep_id if t else None for t in turns]


def test_a_cycle_is_max_weight_rounds_in_place_order():
    assert names(run([A, B, C], 4)[0]) == ["A", "B", "C", "C"]
    assert names(run([Member("A", 2), B, C], 5)[0]) == ["A", "B", "C", "A", "C"]


def test_weights_1_1_2_and_a_paused_rep_over_many_cycles_give_exact_counts():
    every_turn, state = run([A, P, B, C], 4 * 250)
    turns = taken(every_turn)
    counts = Counter(t.rep_id for t in turns)
    assert counts == {"A": 250, "B": 250, "C": 500}
    slots = [t.slot for t in turns]
    assert slots == list(range(1000))  # one slot per turn, never reused
    assert state.next_slot == 1000


def test_adding_a_rep_gives_nobody_a_second_turn_and_costs_nobody_their_place():
    abc = [A, B, Member("C")]
    turns, state = run(abc, 4)
    assert names(turns) == ["A", "B", "C", "A"]
    turns, _ = run([*abc, Member("D")], 8, state)
    assert names(turns) == ["B", "C", "D", "A", "B", "C", "D", "A"]


def test_a_weight_change_keeps_the_pointer_where_it_was():
    turns, state = run([A, B, Member("C")], 4)  # A B C A
    turns, _ = run([A, Member("B", weight=2), Member("C")], 6, state)
    # B and C come next in round 0; then round 1, where only B takes part.
    assert names(turns) == ["B", "C", "B", "A", "B", "C"]


def test_a_paused_rep_keeps_their_place():
    members = [A, Member("P"), B]
    turns, state = run(members, 1)  # A
    turns, state = run([A, P, B], 1, state)  # P paused: B takes the turn
    assert names(turns) == ["B"]
    turns, _ = run(members, 3, state)
    assert names(turns) == ["A", "P", "B"]


def test_places_not_list_positions_decide_the_order():
    late = Member("Z", place=1)
    early = [Member("X", place=5), Member("Y", place=9)]
    turns, state = run([*early, late], 3)
    assert names(turns) == ["Z", "X", "Y"]
    # Z moves out of the queue and back: nothing is re-mapped.
    turns, state = run(early, 1, state)
    assert names(turns) == ["X"]
    turns, _ = run([late, *early], 3, state)
    assert names(turns) == ["Y", "Z", "X"]


def test_daily_cap_skips_the_rep_for_that_day():
    capped = [Member("A", daily_cap=2), B]
    assert names(run(capped, 6)[0]) == ["A", "B", "A", "B", "B", "B"]


def test_daily_cap_counts_earlier_assignments_of_the_day():
    capped = [Member("A", daily_cap=2), B]
    assert names([next_turn(capped, START, {"A": 2})]) == ["B"]
    assert names([next_turn(capped, START, {"A": 1})]) == ["A"]


def test_cap_of_zero_never_takes_a_turn():
    assert names(run([Member("A", daily_cap=0), B], 3)[0]) == ["B", "B", "B"]


def test_nobody_eligible_returns_none_and_keeps_the_state():
    later = RotationState(7, 0, 3)
    assert next_turn([], later, {}) is None
    assert next_turn([P, Member("Q", available=False)], later, {}) is None
    turns, state = run([Member("A", daily_cap=1)], 3)
    assert names(turns) == ["A", None, None]
    assert state == RotationState(1, 0, 0)


def test_zero_weight_never_takes_a_turn():
    assert {t.rep_id for t in taken(run([Member("Z", weight=0), A], 3)[0])} == {"A"}


def test_batch_matches_one_by_one():
    members = [A, P, B, C]
    state = RotationState(11, 1, 2)
    batch, after_batch = run(members, 37, state)
    single = []
    for _ in range(37):
        t = next_turn(members, state, {})
        assert t is not None
        single.append(t)
        state = t.after
    assert batch == single
    assert state == after_batch


def test_a_state_survives_its_stored_form():
    _, state = run([A, B, C], 3)
    assert RotationState.from_json(state.next_slot, state.to_json()) == state
    assert RotationState.from_json(5, {}) == RotationState(5)


def test_duplicates_and_negative_states_are_rejected():
    with pytest.raises(ValueError, match="twice"):
        next_turn([A, A], START, {})
    with pytest.raises(ValueError, match="place"):
        next_turn([Member("X", place=1), Member("Y", place=1)], START, {})
    with pytest.raises(ValueError):
        RotationState(-1)
