from datetime import UTC, datetime, timedelta
from typing import Any

from revops.router.domain.merge import Stamp, merge_fields, stamp, stamps_of

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


Change = tuple[datetime, str, dict[str, Any]]


def apply(changes: list[Change]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    stamps: dict[str, Stamp] = {}
    for at, event_id, change in changes:
        merge_fields(record, stamps, change, stamp(at, event_id))
    return record


def test_an_older_change_arriving_late_keeps_only_the_fields_nobody_changed_since():
    newer = (T0 + timedelta(seconds=1), "e2", {"owner_id": "005B", "name": None})
    older = (T0, "e1", {"owner_id": "005A", "name": "Acme", "country": "US"})
    assert apply([newer, older]) == {"owner_id": "005B", "name": "Acme", "country": "US"}


def test_any_arrival_order_gives_the_same_record():
    changes = [
        (T0, "e1", {"owner_id": "005A", "name": "Acme"}),
        (T0 + timedelta(microseconds=1), "e2", {"name": "Acme Inc"}),
        (T0 + timedelta(microseconds=1), "e3", {"owner_id": "005C"}),
        (T0 + timedelta(days=1), "e4", {"owner_id": "005D", "country": "DE"}),
    ]
    expected = {"owner_id": "005D", "name": "Acme Inc", "country": "DE"}
    assert apply(changes) == expected
    assert apply(list(reversed(changes))) == expected
    assert apply([changes[2], changes[0], changes[3], changes[1]]) == expected


def test_the_same_instant_is_decided_by_the_event_id():
    a = (T0, "e1", {"owner_id": "005A"})
    b = (T0, "e2", {"owner_id": "005B"})
    assert apply([a, b]) == apply([b, a]) == {"owner_id": "005B"}


def test_a_change_applied_twice_is_taken_once():
    record: dict[str, Any] = {}
    stamps: dict[str, Stamp] = {}
    change = {"owner_id": "005A"}
    assert merge_fields(record, stamps, change, stamp(T0, "e1")) == {"owner_id"}
    assert merge_fields(record, stamps, change, stamp(T0, "e1")) == set()


def test_stamps_survive_their_json_form():
    record: dict[str, Any] = {}
    stamps: dict[str, Stamp] = {}
    merge_fields(record, stamps, {"name": "Acme"}, stamp(T0, "e1"))
    stored = {k: list(v) for k, v in stamps.items()}
    assert stamps_of(stored) == stamps
    assert merge_fields(record, stamps_of(stored), {"name": "Old"}, stamp(T0, "e0")) == set()
