from collections import Counter

import pytest

from revops.router.domain.rotation import Member, cycle, next_turn, take_turns

A, B, C = Member("A"), Member("B"), Member("C", weight=2)
P = Member("P", available=False)  # paused


def run(members, n, cursor=0, counts=None):
    turns, cursor = take_turns(members, cursor, counts or {}, n)
    return turns, cursor


def test_cycle_interleaves_weights_in_strict_order():
    assert cycle([A, B, C]) == ["A", "B", "C", "C"]
    assert cycle([Member("A", 2), B, C]) == ["A", "B", "C", "A", "C"]
    assert cycle([]) == []


def test_weights_1_1_2_and_a_paused_rep_over_many_cycles_give_exact_counts():
    members = [A, P, B, C]
    turns, cursor = run(members, 4 * 250)
    counts = Counter(t.rep_id for t in turns)
    assert counts == {"A": 250, "B": 250, "C": 500}
    assert "P" not in counts
    slots = [t.slot for t in turns]
    assert len(set(slots)) == len(slots)
    assert slots == sorted(slots)
    assert cursor == 5 * 250  # P's slot is passed once per cycle


def test_strict_order_sequence():
    turns, _ = run([A, P, B, C], 8)
    assert [t.rep_id for t in turns] == ["A", "B", "C", "C"] * 2


def test_paused_rep_returns_without_losing_their_place():
    paused = [A, P, B, C]
    turns, cursor = run(paused, 2)  # A, then P skipped, B
    assert [t.rep_id for t in turns] == ["A", "B"]
    back = [A, Member("P"), B, C]
    turns, cursor = run(back, 5, cursor)
    # The cycle goes on where it was: C C, then a fresh cycle with P in its usual place.
    assert [t.rep_id for t in turns] == ["C", "C", "A", "P", "B"]


def test_paused_rep_mid_cycle_keeps_slot_for_next_cycle():
    members = [A, Member("P"), B]
    turns, cursor = run(members, 1)  # A
    turns, cursor = run([A, P, B], 1, cursor)  # P paused: B takes the turn
    assert turns[0].rep_id == "B"
    turns, cursor = run(members, 3, cursor)
    assert [t.rep_id for t in turns] == ["A", "P", "B"]


def test_daily_cap_skips_the_rep_for_that_day():
    capped = [Member("A", daily_cap=2), B]
    turns, _ = run(capped, 6)
    assert [t.rep_id for t in turns] == ["A", "B", "A", "B", "B", "B"]


def test_daily_cap_counts_earlier_assignments_of_the_day():
    capped = [Member("A", daily_cap=2), B]
    assert next_turn(capped, 0, {"A": 2}).rep_id == "B"
    assert next_turn(capped, 0, {"A": 1}).rep_id == "A"


def test_cap_of_zero_never_takes_a_turn():
    turns, _ = run([Member("A", daily_cap=0), B], 3)
    assert [t.rep_id for t in turns] == ["B", "B", "B"]


def test_nobody_eligible_returns_none_and_keeps_cursor():
    assert next_turn([], 7, {}) is None
    assert next_turn([P, Member("Q", available=False)], 7, {}) is None
    turns, cursor = run([Member("A", daily_cap=1)], 3)
    assert [t and t.rep_id for t in turns] == ["A", None, None]
    assert cursor == 1


def test_zero_weight_never_takes_a_turn():
    turns, _ = run([Member("Z", weight=0), A], 3)
    assert {t.rep_id for t in turns} == {"A"}


def test_batch_never_reuses_a_turn_and_matches_one_by_one():
    members = [A, P, B, C]
    batch, cursor_batch = run(members, 37, cursor=11)
    cursor = 11
    single = []
    for _ in range(37):
        t = next_turn(members, cursor, {})
        single.append(t)
        cursor = t.cursor
    assert batch == single
    assert cursor == cursor_batch


def test_duplicate_member_is_rejected():
    with pytest.raises(ValueError, match="twice"):
        next_turn([A, A], 0, {})


def test_negative_cursor_is_rejected():
    with pytest.raises(ValueError):
        next_turn([A], -1, {})
