"""What each service's Postgres sessions are doing, sampled: run it beside a benchmark.

    uv run python bench/pg_waits.py --seconds 30       # every 50 ms, database revops_bench

Counts, per role, in how many samples a session was running (`active` with no wait event:
on CPU or sending rows), waiting for a lock (`Lock: transactionid`, `Lock: tuple`, ...),
on I/O or on its client (`Client: ClientRead`: the service's Python is between two
statements of an open transaction). Written for the scale-out question: do two router
instances wait on each other's locks?

Other roles' wait events are visible only to a superuser, so it runs psql as one through
`deploy/local/postgres.sh psql` (the local `postgres` user, or PG_SUPERUSER_URL), with
\\watch.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

POSTGRES_SH = Path(__file__).resolve().parent.parent / "deploy" / "local" / "postgres.sh"

QUERY = """
SELECT usename, state, coalesce(wait_event_type || ': ' || wait_event, 'running')
FROM pg_stat_activity
WHERE datname = '{database}' AND pid <> pg_backend_pid()
  AND state IN ('active', 'idle in transaction')
UNION ALL SELECT '#', '', ''
"""


def sample(database: str, seconds: float, every_s: float) -> list[str]:
    script = QUERY.format(database=database).strip() + f"\n\\watch {every_s}\n"
    with subprocess.Popen(
        # Fields separated by commas: no role, state or wait event name holds one.
        [str(POSTGRES_SH), "psql", "-d", database, "-At", "-F,"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # su's 'Session terminated' on the interrupt
        text=True,
        start_new_session=True,
    ) as psql:
        try:
            out, _ = psql.communicate(script, timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(psql.pid, signal.SIGINT)
            out, _ = psql.communicate()
    return out.splitlines()


def summarise(lines: list[str], roles: list[str], every_s: float) -> str:
    samples = sum(1 for line in lines if line.startswith("#,"))
    seen: Counter[tuple[str, str]] = Counter()
    for line in lines:
        role, state, doing = [*line.split(","), "", ""][:3]
        if role in roles:
            seen[(role, doing if state == "active" else "idle in transaction")] += 1
    out = [f"{samples} samples, every {every_s * 1000:.0f} ms; sessions per sample:"]
    for role in roles:
        rows = sorted(((d, n) for (r, d), n in seen.items() if r == role), key=lambda x: -x[1])
        out.append(f"  {role}: " + ", ".join(f"{d} {n / max(samples, 1):.2f}" for d, n in rows))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--every-ms", type=float, default=50)
    parser.add_argument("--database", default="revops_bench")
    parser.add_argument("--roles", default="router,attribution,renewals")
    args = parser.parse_args()
    every_s = args.every_ms / 1000
    lines = sample(args.database, args.seconds, every_s)
    print(summarise(lines, args.roles.split(","), every_s))


if __name__ == "__main__":
    main()
