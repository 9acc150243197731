from datetime import UTC, datetime, timedelta

import pytest

from revops.attribution.domain.pipeline import qualified_at, stage_rank

T = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stage", "rank"),
    [
        ("1 - Interest", 1),
        ("2 - Qualified", 2),
        ("Stage 3 - Proposal", 3),
        ("stage 0", 0),
        ("Prospecting", 1),
        ("Qualification", 2),
        ("Negotiation/Review", 5),
        ("Closed Won", 6),
        ("closedwon", 6),
        ("qualifiedtobuy", 2),
        ("Closed Lost", None),
        ("Something else", None),
        (None, None),
        ("", None),
    ],
)
def test_stage_rank(stage: str | None, rank: int | None) -> None:
    assert stage_rank(stage) == rank


def test_qualified_from_the_first_time_it_reaches_stage_2() -> None:
    assert qualified_at(None, "1 - Interest", T) is None
    assert qualified_at(None, "2 - Qualified", T) == T
    # An earlier stage-2 event arriving late moves the date back; a later one does not.
    assert qualified_at(T, "3 - Proposal", T - timedelta(days=2)) == T - timedelta(days=2)
    assert qualified_at(T, "3 - Proposal", T + timedelta(days=2)) == T
    # Falling back or being lost does not unqualify its history.
    assert qualified_at(T, "1 - Interest", T + timedelta(days=3)) == T
    assert qualified_at(T, "Closed Lost", T + timedelta(days=3)) == T
