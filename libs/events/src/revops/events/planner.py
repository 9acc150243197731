"""Keep Postgres's statistics of a service's tables current while they grow quickly.

The batch statements are prepared once per connection and Postgres soon settles on a
generic plan for each. Made while the tables were nearly empty (a fresh schema: a
recompute, a backlog after a deploy) that plan scans them whole, and it stays until the
table is analysed again -- every batch then costs as much as the tables hold (measured:
a 100,000-event load went from 1 ms to 130 ms per influence lookup). Autovacuum analyses
a table only once a minute at best. So each time this process has applied twice as many
events as at the last check, the tables changed by more than they held at their last
analysis are analysed (which also drops the stale plans): a handful of times while a
schema fills, about never in steady state. The consumer runner does it for every
service, on a connection of its own beside the batches.

Without it, a benchmark's fresh schemas were read with whole-table scans until autovacuum
happened to analyse them, a minute or so into the run: in some runs the router's batches
scanned ``leads`` 800 times (6.7 million rows read in 60 s), and the lead's p99 tripled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from revops.events.db import Database

log = logging.getLogger(__name__)

_OUTGROWN = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = :schema AND s.relname = ANY(:tables)"
    " AND s.n_mod_since_analyze > greatest(c.reltuples, 0) ORDER BY s.relname"
).bindparams(bindparam("tables", type_=ARRAY(Text)))


@dataclass
class Statistics:
    tables: Sequence[Table]
    first_check_after: int = 1000
    applied: int = 0
    checked_at: int = 0

    def note_applied(self, events: int) -> bool:
        """Count ``events`` as applied; True at a check point (then call ``analyse``)."""
        self.applied += events
        if self.applied < max(self.first_check_after, 2 * self.checked_at):
            return False
        self.checked_at = self.applied
        return True

    async def analyse(self, database: Database) -> list[str]:
        """Analyse the outgrown tables, in a transaction of its own: the consumer goes on
        meanwhile (inside a batch, analysing ten 50,000-row tables held the router's batch,
        and its rotation lock, for 1.3 s on a busy machine). Returns the tables analysed."""
        schema = self.tables[0].schema
        names = [table.name for table in self.tables]
        async with database.transaction() as session:
            found = await session.execute(_OUTGROWN, {"schema": schema, "tables": names})
            outgrown = list(found.scalars())
            if outgrown:
                # Names from our own metadata, not from input.
                tables = ", ".join(f"{schema}.{name}" for name in outgrown)
                await session.execute(text(f"ANALYZE {tables}"))
        if outgrown:
            log.info("tables analysed", extra={"tables": outgrown, "events": self.applied})
        return outgrown
