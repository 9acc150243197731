"""Merging a record's facts does not depend on the order events arrive in."""

from datetime import UTC, datetime, timedelta
from itertools import permutations

from revops.attribution.facts import OpportunityFacts, PersonFacts, stamp

T = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


def opportunity(event_id: str, hours: int, **fields: object) -> OpportunityFacts:
    at = T + timedelta(hours=hours)
    return OpportunityFacts("006A", at, stamp=stamp(at, event_id), **fields)  # type: ignore[arg-type]


def merged(records: tuple[OpportunityFacts, ...]) -> dict[str, object]:
    first, *rest = (OpportunityFacts.from_row(r.row()) for r in records)
    for record in rest:
        first.merge(record)
    return first.row()


def test_the_latest_event_wins_each_field_whatever_the_arrival_order() -> None:
    events = (
        opportunity("e1", 0, stage="1 - Interest", amount=100, account_id="001A"),
        opportunity("e2", 5, stage="2 - Qualified"),
        opportunity("e3", 3, amount=300, crm_created_at=T - timedelta(days=1)),
        opportunity("e4", 9, account_id="001B"),
    )
    answers = [merged(order) for order in permutations(events)]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["stage"] == "2 - Qualified"
    assert answers[0]["amount"] == 300
    assert answers[0]["account_id"] == "001B"
    # Times of creation and first sight keep the earliest.
    assert answers[0]["crm_created_at"] == T - timedelta(days=1)
    assert answers[0]["first_seen_at"] == T


def test_a_field_an_event_does_not_carry_is_left_alone() -> None:
    record = opportunity("e1", 0, stage="2 - Qualified", amount=100)
    record.merge(opportunity("e2", 1, amount=200))
    assert (record.stage, record.amount) == ("2 - Qualified", 200)


def test_same_time_ties_break_on_the_event_id() -> None:
    a = PersonFacts("p@x.io", T, account_id="001A", stamp=stamp(T, "a"))
    b = PersonFacts("p@x.io", T, account_id="001B", stamp=stamp(T, "b"))
    a.merge(b)
    b2 = PersonFacts("p@x.io", T, account_id="001B", stamp=stamp(T, "b"))
    b2.merge(PersonFacts("p@x.io", T, account_id="001A", stamp=stamp(T, "a")))
    assert a.account_id == b2.account_id == "001B"


def test_stamps_sort_by_time_whatever_the_microseconds() -> None:
    assert stamp(T, "z") < stamp(T + timedelta(microseconds=1), "a")
    assert stamp(T + timedelta(seconds=1), "a") > stamp(T + timedelta(microseconds=999999), "z")
