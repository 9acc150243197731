"""When each row the benchmark waits for was committed, read from Postgres after a phase.

Postgres records every transaction's commit time when `track_commit_timestamp` is on
(deploy/local/postgres.sh sets it), and `pg_xact_commit_timestamp(xmin)` gives it for a
row. So nothing watches the system while it is under load: after a phase has drained,
one query per table, as each service's own role, reads:
  router.leads (email)          -> "lead:<email>"      the routed lead
  <svc>.inbox (event_id)        -> "<svc>:<event id>"  the event applied by that service

A lead's time is its creating transaction's: the lead's own xmin moves whenever a later
event updates it, so it is read from rows that are never updated. A lead routed in its
batch is created with the inbox row of its event (leads.source_event_id). A lead held for
CRM state is created later, by the held-leads loop: then the turn it took (queue_turns,
subject_id) was written in that transaction, and where it took none, the transaction's
start (leads.routed_at), a few milliseconds before its commit, is the best there is. The
latest of the three is the lead's time.

The time is the one Postgres stamps on the commit record, just before the record is
flushed; the rows become visible once the flush returns, a WAL fsync later.
(The benchmark used to poll the tables every 20 ms while it ran: that cost 6 % of the
machine's CPU in Postgres alone and was late by up to one interval.)
"""

from __future__ import annotations

from typing import Any

from system import PG, db_url

# service -> [(label, query)]; $1 = epoch seconds, rows applied since then.
QUERIES = {
    "router": [
        (
            "lead",
            """SELECT l.email,
                      extract(epoch FROM greatest(
                          pg_xact_commit_timestamp(coalesce(i.xmin, l.xmin)),
                          pg_xact_commit_timestamp(t.xmin),
                          l.routed_at))
                 FROM router.leads l
                 LEFT JOIN router.inbox i ON i.event_id = l.source_event_id
                 LEFT JOIN router.queue_turns t ON t.subject_id = l.id
                WHERE l.routed_at >= to_timestamp($1)""",
        ),
    ],
}
INBOX = """SELECT event_id, extract(epoch FROM pg_xact_commit_timestamp(xmin))
             FROM {service}.inbox WHERE applied_at >= to_timestamp($1)"""


class CommitTimesOff(RuntimeError):
    pass


async def check_commit_times() -> None:
    """Fail before a run, not after it, when Postgres does not record commit times."""
    import asyncpg

    conn = await asyncpg.connect(db_url("router", "postgresql"), timeout=5)
    try:
        if await conn.fetchval("SHOW track_commit_timestamp") != "on":
            raise CommitTimesOff(
                f"Postgres on {PG} has track_commit_timestamp off; the benchmark "
                "reads commit times. Run `deploy/local/infra.sh up` (it sets it and restarts "
                "the cluster), or set it in postgresql.conf and restart Postgres."
            )
    finally:
        await conn.close()


async def commit_times(services: list[str], since: float) -> dict[str, float]:
    """{"<label>:<key>": commit time (epoch s)} for the rows applied since ``since``."""
    import asyncpg

    seen: dict[str, float] = {}
    for service in services:
        conn = await asyncpg.connect(db_url(service, "postgresql"), timeout=5)
        try:
            queries: list[tuple[str, str]] = [
                *QUERIES.get(service, []),
                (service, INBOX.format(service=service)),
            ]
            for label, query in queries:
                rows: list[Any] = await conn.fetch(query, since)
                for key, at in rows:
                    if at is not None:  # committed before the setting was on
                        seen[f"{label}:{key}"] = float(at)
        except asyncpg.UndefinedTableError:
            if service != "renewals":  # renewals is included only when it exists
                raise
        finally:
            await conn.close()
    return seen
