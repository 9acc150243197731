"""The rotation's guarantees over random sequences of leads and roster changes (add,
remove, pause, resume, weight, daily cap)."""

from collections import Counter
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import revops.router.domain.rotation as rotation
from revops.events.testing import examples
from revops.router.domain.rotation import Member, RotationState

LEAD = ("lead",)
operations = st.lists(
    st.one_of(
        st.just(LEAD),
        st.just(LEAD),
        st.just(LEAD),
        st.tuples(st.just("add"), st.integers(1, 3)),
        st.tuples(st.sampled_from(["remove", "pause", "resume"]), st.integers(0, 9)),
        st.tuples(st.just("weight"), st.integers(0, 9), st.integers(0, 3)),
        st.tuples(st.just("cap"), st.integers(0, 9), st.none() | st.integers(0, 4)),
    ),
    max_size=120,
)
ROSTER = [Member("R0", place=0), Member("R1", place=1), Member("R2", place=2)]


def change(roster: list[Member], op: tuple[Any, ...], next_place: int) -> list[Member]:
    if op[0] == "add":
        return [*roster, Member(f"R{next_place}", weight=op[1], place=next_place)]
    if not roster:
        return roster
    i = op[1] % len(roster)
    if op[0] == "remove":
        return roster[:i] + roster[i + 1 :]
    edits = {
        "pause": {"available": False},
        "resume": {"available": True},
        "weight": {"weight": op[-1]},
        "cap": {"daily_cap": op[-1]},
    }[op[0]]
    return [*roster[:i], replace(roster[i], **edits), *roster[i + 1 :]]


def eligible(roster: list[Member], today: Counter[str]) -> frozenset[str]:
    return frozenset(m.rep_id for m in roster if m.may_take(today[m.rep_id]))


Period = tuple[list[Member], Counter[str], list[str]]


def play(ops: list[tuple[Any, ...]]) -> list[Period]:
    """The turns of each period: a run of leads in which neither the roster nor anyone's
    eligibility changed. Checks on the way what holds for every single turn."""
    roster, state = list(ROSTER), RotationState()
    today: Counter[str] = Counter()
    periods: list[Period] = []
    started_with: frozenset[str] | None = None
    last: str | None = None
    for n, op in enumerate(ops):
        if op != LEAD:
            roster = change(roster, op, next_place=len(ROSTER) + n)
            started_with = None
            continue
        who = eligible(roster, today)
        if who != started_with:
            periods.append((roster, Counter(today), []))
            started_with = who
        turn = rotation.next_turn(roster, state, today)
        if turn is None:
            assert not who, "somebody eligible got no turn"
            continue
        # A slot per turn, never reused; the turn goes to somebody who may take it.
        assert turn.slot == state.next_slot and turn.after.next_slot == state.next_slot + 1
        assert turn.rep_id in who
        # Never two turns in a row while an eligible teammate of equal weight waits.
        if turn.rep_id == last:
            weight = next(m.weight for m in roster if m.rep_id == turn.rep_id)
            peers = {m.rep_id for m in roster if m.weight == weight and m.rep_id in who}
            assert peers == {turn.rep_id}, f"{turn.rep_id} twice in a row while {peers} wait"
        state, last = turn.after, turn.rep_id
        today[turn.rep_id] += 1
        periods[-1][2].append(turn.rep_id)
    return periods


@settings(max_examples=examples(300), derandomize=True, deadline=None)
@given(operations)
def test_every_turn_is_a_fresh_slot_to_someone_eligible_and_never_a_double_turn(ops):
    play(ops)


@settings(max_examples=examples(300), derandomize=True, deadline=None)
@given(operations)
def test_between_changes_every_whole_cycle_gives_each_eligible_rep_exactly_its_weight(ops):
    for roster, before, turns in play(ops):
        weights = {
            m.rep_id: m.weight for m in roster if m.may_take(before[m.rep_id]) and m.weight > 0
        }
        cycle = sum(weights.values())
        for start in range(len(turns) - cycle + 1):
            window = Counter(turns[start : start + cycle])
            assert window == weights, (start, turns)


@settings(max_examples=examples(300), derandomize=True, deadline=None)
@given(operations)
def test_between_changes_reps_of_equal_weight_stay_within_one_turn_of_each_other(ops):
    for roster, before, turns in play(ops):
        counts = Counter(turns)
        by_weight: dict[int, list[int]] = {}
        for m in roster:
            if m.may_take(before[m.rep_id]):
                by_weight.setdefault(m.weight, []).append(counts[m.rep_id])
        for weight, seen in by_weight.items():
            assert max(seen) - min(seen) <= 1, (weight, seen, turns)
