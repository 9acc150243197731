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
service, before each batch is handled.

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
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

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

    async def note_applied(self, session: AsyncSession, events: int) -> None:
        """Count `events` as applied; at a checkpoint, analyse the outgrown tables in
        `session`'s transaction."""
        self.applied += events
        if self.applied < max(self.first_check_after, 2 * self.checked_at):
            return
        self.checked_at = self.applied
        schema = self.tables[0].schema
        names = [table.name for table in self.tables]
        found = await session.execute(_OUTGROWN, {"schema": schema, "tables": names})
        outgrown = list(found.scalars())
        if outgrown:
            # Names from our own metadata, not from input.
            await session.execute(text(f"ANALYZE {', '.join(f'{schema}.{n}' for n in outgrown)}"))
            log.info("tables analysed", extra={"tables": outgrown, "events": self.applied})
