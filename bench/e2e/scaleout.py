"""Router scale-out: how fast one and two router instances work off the same backlog.

    uv run --group bench python bench/e2e/scaleout.py --requests 30000 --instances 1,2,1,2

At 1,000 events/s the whole pipeline shares this machine's two cores, so the end-to-end
benchmark (load.py) cannot tell what a second router instance adds: ingest, Kafka,
Postgres and the other consumers take the cores it would use. This benchmark asks the
router's own question. For each entry of ``--instances`` it starts a fresh system under
test (bench/system.py: its own topics, an empty ``revops_bench`` schema, ingest and N
router instances, no attribution or renewals), adds the sales team, stops the routers
(SIGSTOP), sends ``--requests`` of the end-to-end mix (bench/e2e/workload.py: forms,
sign-ups, HubSpot contact batches, Salesforce leads, accounts, opportunities and tasks)
through ingest as fast as it answers, so every lead carries ingest's watermark as in
production, then lets the routers go (SIGCONT) and samples the group's lag every 250 ms
until it is 0.

Reported per run: the backlog (events), the routers' rate over the middle of the
drain (from 90 % of the backlog left to 10 %, so the rebalance after the pause and the
last partition's tail do not count), the whole drain time, the leads held for CRM state
and how they were released (``applied``: the state came; ``bound``: routed after
``CRM_STATE_WAIT_S`` without it), and each part's share of the cores during the drain,
with the load average. Writes results.json to bench/results/scaleout-<date>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from client import Pool  # noqa: E402
from load import LagReader, held_leads, machine  # noqa: E402
from system import System, add_reps, snapshot  # noqa: E402
from workload import Workload  # noqa: E402


async def send_backlog(system: System, requests: int, connections: int) -> tuple[int, float]:
    """Every request through ingest as fast as it answers; returns (events acked, seconds)."""
    url = system.urls("ingest")[0]
    workload = Workload(system.run_id, url)
    pool = Pool(url, connections)
    pool.start()
    acked = 0
    failed: list[str] = []
    left = requests
    done_all = asyncio.Event()

    def answered(events: int) -> Any:
        def done(code: int | str, _: float) -> None:
            nonlocal acked, left
            if isinstance(code, int) and 200 <= code < 300:
                acked += events
            else:
                failed.append(str(code))
            left -= 1
            if left == 0:
                done_all.set()

        return done

    started = time.monotonic()
    now = datetime.now(UTC)
    for n in range(requests):
        request = workload.build(n, now=now, ingest_url=url)
        pool.submit(
            "POST", request.path, request.headers, request.body, answered(len(request.event_ids))
        )
        if n % 500 == 499:
            await asyncio.sleep(0)  # let the pool's workers send while the rest is built
    await done_all.wait()
    await pool.close()
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed while sending the backlog: {failed[:5]}")
    return acked, time.monotonic() - started


async def drain(
    system: System, reader: LagReader, backlog: int, timeout_s: float, profile: Path | None
) -> dict[str, Any]:
    """SIGCONT the routers and sample the lag until it is 0."""
    profilers = [_profile(inst.pid, profile) for inst in system.procs["router"]] if profile else []
    cpu_before = system.cpu_seconds()
    for index in range(len(system.procs["router"])):
        system.signal("router", index, signal.SIGCONT)
    t0 = time.monotonic()
    series: list[tuple[float, int]] = []
    while True:
        lag = (await reader.read())["router"]
        series.append((round(time.monotonic() - t0, 3), lag))
        if lag == 0:
            break
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"the routers did not drain within {timeout_s} s (lag {lag})")
        await asyncio.sleep(0.25)
    drained_s = time.monotonic() - t0
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        profiler.wait()
    cpu = {k: v - cpu_before.get(k, 0.0) for k, v in system.cpu_seconds().items()}
    high = next(t for t, lag in series if lag <= 0.9 * backlog)
    low = next(t for t, lag in series if lag <= 0.1 * backlog)
    cores = os.cpu_count() or 1
    return {
        "drained_s": round(drained_s, 2),
        "middle_rate_events_per_s": round(0.8 * backlog / max(low - high, 1e-3), 1),
        "whole_rate_events_per_s": round(backlog / drained_s, 1),
        "cpu_s": {k: round(v, 1) for k, v in cpu.items() if v >= 0.05},
        "cpu_share": {k: round(v / (drained_s * cores), 3) for k, v in cpu.items() if v >= 0.05},
        "router_cpu_ms_per_event": round(1000 * cpu.get("router", 0.0) / backlog, 3),
        "load1_after": os.getloadavg()[0],
        "lag_series": series,
    }


def _profile(pid: int | None, folder: Path) -> subprocess.Popen[bytes]:
    """py-spy (``pip install py-spy``) sampling a router while it drains."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            *("py-spy", "record", "--nonblocking", "--format", "raw", "-r", "100"),
            *("-p", str(pid), "-o", str(folder / f"router-{pid}.txt")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def one_run(args: argparse.Namespace, instances: int) -> dict[str, Any]:
    system = System(instances={"ingest": 1, "router": instances, "attribution": 0, "renewals": 0})
    if args.sut != "worktree":
        system.sut = snapshot(args.sut)
    try:
        await asyncio.to_thread(system.start)
        await asyncio.to_thread(add_reps, system.urls("router")[0])
        reader = LagReader(system)
        await reader.start()
        load_at_start = os.getloadavg()
        for index in range(instances):
            system.signal("router", index, signal.SIGSTOP)
        acked, sent_s = await send_backlog(system, args.requests, args.connections)
        backlog = (await reader.read())["router"]
        result = await drain(system, reader, backlog, args.drain_timeout, args.profile)
        # Fresh processes: their counters count this drain only.
        held = {k: int(v) for k, v in (await held_leads(system)).items()}
        await reader.stop()
        return {
            "instances": instances,
            "sut": str(system.sut),
            "events_acked": acked,
            "sent_in_s": round(sent_s, 1),
            "backlog": backlog,
            "load_avg_at_start": load_at_start,
            "router_leads_held": held,
            **result,
        }
    finally:
        await asyncio.to_thread(system.stop)
        await asyncio.to_thread(system.delete_topics)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=30000, help="webhook requests in the backlog"
    )
    parser.add_argument("--instances", default="1,2,1,2", help="router instances per run, in order")
    parser.add_argument("--connections", type=int, default=32, help="connections to ingest")
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--profile", type=Path, default=None, help="folder for py-spy profiles of the drain"
    )
    parser.add_argument("--sut", default="HEAD", help="commit to run, or 'worktree' (as load.py)")
    args = parser.parse_args()
    if args.out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        args.out = HERE.parent / "results" / f"scaleout-{stamp}"
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in (int(x) for x in args.instances.split(",")):
        run = asyncio.run(one_run(args, n))
        runs.append(run)
        shares = ", ".join(
            f"{k} {v:.0%}"
            for k, v in sorted(run["cpu_share"].items(), key=lambda kv: -kv[1])
            if v >= 0.01
        )
        print(
            f"routers {n}: backlog {run['backlog']} events, "
            f"middle {run['middle_rate_events_per_s']}/s, "
            f"whole {run['whole_rate_events_per_s']}/s in {run['drained_s']} s, "
            f"router {run['router_cpu_ms_per_event']} ms CPU/event, "
            f"held {run['router_leads_held']}, "
            f"load {run['load_avg_at_start'][0]:.1f}; cores: {shares}",
            flush=True,
        )
    out = {"machine": machine(), "command": " ".join(sys.argv), "runs": runs}
    (args.out / "results.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
