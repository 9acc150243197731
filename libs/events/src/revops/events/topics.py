"""Every Kafka topic of the system, named once, with its partitions and retention.

Topic names carry a deployment prefix (``TOPIC_PREFIX``, empty by default) so that
tests and several environments can share one broker without seeing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

KEEP_FOREVER = -1
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    base_name: str
    partitions: int
    retention_ms: int
    # The system's history: what happened, from which every service rebuilds its schema
    # (``revops reset SERVICE --follow``), so never deleted by time. Ingest writes the
    # outside world's; the router's API writes the roster. Derived topics are not history.
    history: bool

    def name(self, prefix: str = "") -> str:
        return f"{prefix}{self.base_name}"

    def dlq_name(self, prefix: str = "") -> str:
        return f"{self.name(prefix)}.dlq"


# Written by ingest: the history.
FORMS = TopicSpec("revops.forms", partitions=6, retention_ms=KEEP_FOREVER, history=True)
SIGNUPS = TopicSpec("revops.signups", partitions=6, retention_ms=KEEP_FOREVER, history=True)
PEOPLE = TopicSpec("revops.people", partitions=6, retention_ms=KEEP_FOREVER, history=True)
ACCOUNTS = TopicSpec("revops.accounts", partitions=6, retention_ms=KEEP_FOREVER, history=True)
OPPORTUNITIES = TopicSpec(
    "revops.opportunities", partitions=6, retention_ms=KEEP_FOREVER, history=True
)
ACTIVITIES = TopicSpec("revops.activities", partitions=6, retention_ms=KEEP_FOREVER, history=True)

# Written by the router's API: every change of a rep, the only record of the roster. One
# partition is one total order, so a rebuild applies the changes as they were made and the
# rotation order (the order reps were created) comes out the same every time.
ROSTER = TopicSpec("revops.roster", partitions=1, retention_ms=KEEP_FOREVER, history=True)

# Written by the services through their outboxes.
# The router's decisions are facts a rebuild re-applies (a round-robin turn depends on
# arrival order, which a replay does not reproduce), so they are kept like the history.
ROUTING = TopicSpec("revops.routing", partitions=6, retention_ms=KEEP_FOREVER, history=False)
# Derived and re-derivable from the history: time-limited.
RENEWALS = TopicSpec("revops.renewals", partitions=3, retention_ms=THIRTY_DAYS_MS, history=False)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    FORMS,
    SIGNUPS,
    PEOPLE,
    ACCOUNTS,
    OPPORTUNITIES,
    ACTIVITIES,
    ROSTER,
    ROUTING,
    RENEWALS,
)
# The CRM state a lead's routing reads: a form or sign-up is routed once every record of
# these that Kafka held when ingest accepted it is applied (the router's causal order).
CRM_STATE: tuple[TopicSpec, ...] = (ROSTER, PEOPLE, ACCOUNTS, OPPORTUNITIES, ACTIVITIES)
HISTORY_TOPICS: tuple[TopicSpec, ...] = tuple(t for t in ALL_TOPICS if t.history)

# Dead letters are kept until an operator replays or discards them.
DLQ_PARTITIONS = 1
DLQ_RETENTION_MS = KEEP_FOREVER


def by_base_name(base_name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.base_name == base_name:
            return spec
    raise KeyError(f"unknown topic {base_name!r}; known: {[t.base_name for t in ALL_TOPICS]}")
