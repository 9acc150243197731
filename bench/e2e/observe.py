"""Watch the services' schemas for newly committed rows, as each service's own role, and
note when each key first became visible (wall clock, time.time()).

Runs in a process of its own (the load generator starts it), so its polling does not
share an event loop or a core's time slice with the sender. What it watches:
  router.leads (email)          -> "lead:<email>"      the routed lead
  <svc>.inbox (event_id)        -> "<svc>:<event id>"  the event applied by that service

Reading only what is new, cheaply, on tables that grow all run long: a TID range scan of
the last blocks of the table (PG 14+) filtered by `committed-at-or-after the oldest
transaction that was open in that role at the previous poll` (pg_stat_activity.xact_start,
visible to the same role): a row that was not visible at the previous poll belongs to a
transaction open then or started later, and the row's own `now()` default (routed_at /
applied_at) is that transaction's start.
The time noted is when the poll's query was sent, so a visibility
time is late by at most one poll interval (~20 ms).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

PG = "127.0.0.1:5432"
DATABASE = "revops_bench"
MARGIN_BLOCKS = 64

WATCHES = {
    # service: [(table, key column, time column, label)]
    "router": [
        ("leads", "email", "routed_at", "lead"),
        ("inbox", "event_id", "applied_at", "router"),
    ],
    "attribution": [("inbox", "event_id", "applied_at", "attribution")],
    "renewals": [("inbox", "event_id", "applied_at", "renewals")],
}

WATERMARK = """
SELECT extract(epoch FROM coalesce(min(xact_start), clock_timestamp()))::float8
  FROM pg_stat_activity
 WHERE usename = current_user AND datname = current_database()
   AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
"""


async def _watch(service: str, stop: MpEvent, seen: dict[str, float], interval_s: float) -> None:
    import asyncpg

    conn = None
    blocks: dict[str, int] = {}
    previous: float | None = None
    watches = WATCHES[service]
    while not stop.is_set():
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    f"postgresql://{service}:{service}@{PG}/{DATABASE}", timeout=3
                )
                await conn.execute(f"SET search_path = {service}")
            sizes = await conn.fetchrow(
                "SELECT "
                + ", ".join(f"pg_relation_size('{service}.{t}') / 8192" for t, *_ in watches)
                + f", ({WATERMARK})"
            )
            assert sizes is not None
            # Rows of a transaction open at the previous poll and committed since then
            # have now() >= the previous poll's watermark (not this one's: that
            # transaction is no longer open).
            current = sizes[-1] - 0.5
            watermark = min(current, previous if previous is not None else current)
            previous = current
            for i, (table, key, at, label) in enumerate(watches):
                start = max(0, blocks.get(table, 0) - MARGIN_BLOCKS)
                sent = time.time()
                rows = await conn.fetch(
                    f"SELECT {key} FROM {service}.{table} WHERE ctid >= '({start},0)'::tid "
                    f"AND {at} >= to_timestamp($1)",
                    watermark,
                )
                for (value,) in rows:
                    seen.setdefault(f"{label}:{value}", sent)
                blocks[table] = sizes[i]
        except (TimeoutError, OSError, Exception) as exc:
            if "does not exist" in str(exc) and service == "renewals":
                return
            conn = None
            await asyncio.sleep(0.2)
            continue
        await asyncio.sleep(interval_s)
    if conn is not None:
        await conn.close()


async def _main(services: list[str], stop: MpEvent, out: Path, interval_s: float) -> None:
    seen: dict[str, float] = {}
    await asyncio.gather(*(_watch(s, stop, seen, interval_s) for s in services))
    # Once, after the watch ended: blocking the loop here delays nothing.
    out.write_text(json.dumps(seen))  # noqa: ASYNC240


def _run(services: list[str], stop: MpEvent, out: str, interval_s: float) -> None:
    asyncio.run(_main(services, stop, Path(out), interval_s))


class Observer:
    def __init__(self, services: list[str], out: Path, interval_s: float = 0.02) -> None:
        ctx = mp.get_context("spawn")
        self.stop_event = ctx.Event()
        self.out = out
        self.proc = ctx.Process(
            target=_run, args=(services, self.stop_event, str(out), interval_s), daemon=True
        )

    def start(self) -> None:
        self.proc.start()

    def finish(self) -> dict[str, float]:
        self.stop_event.set()
        self.proc.join(60)
        return json.loads(self.out.read_text()) if self.out.exists() else {}
