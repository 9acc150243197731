"""Attribution's business figure at /metrics (docs/METRICS.md): decisions written."""

from __future__ import annotations

from prometheus_client import Counter
from sqlalchemy.orm import Session

from revops.events.metrics import count_on_commit

DECISIONS = Counter(
    "revops_attribution_decisions_total",
    "Attribution decisions written (a new or changed decision; one decided again the same "
    "is not counted): a person's lead source and first touch, or an opportunity's source "
    "and campaign influence",
    ["subject"],
)


def count_decisions(session: Session, subject: str, count: int) -> None:
    """``count`` decisions about ``subject`` (person, opportunity) written in the
    session's transaction: counted once it commits."""
    if count:
        count_on_commit(session, lambda: DECISIONS.labels(subject).inc(count))
