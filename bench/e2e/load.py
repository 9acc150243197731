"""End-to-end benchmark: signed webhooks in at a fixed rate, the routed lead out.

    uv sync --group bench
    uv run python bench/e2e/load.py                          # 100, 500, 1000 events/s, 60 s each
    uv run python bench/e2e/load.py --rates 1500,2000 --duration 60
    uv run python bench/e2e/load.py --rates 1000 --warmup 20   # steady state, not a cold start
    uv run python bench/e2e/load.py --instances 2 --ingest 2  # scale-out run

It starts a system under test of its own (bench/system.py: ports 18000.., topic prefix
`bench-<run>-`, database revops_bench; renewals included when it starts), adds a sales
team, and for each rate:
  - sends an OPEN-LOOP mix of signed webhooks (bench/e2e/workload.py): requests are
    scheduled at fixed times and each latency is measured from the request's SCHEDULED
    time, so a slow server cannot slow the sender and hide its queueing (no coordinated
    omission); one asyncio process, a fixed pool of keep-alive connections (client.py:
    httpx's pool went quadratic once requests queued), bodies
    built and signed before the phase starts (HubSpot and Standard Webhooks allow 5 min);
  - end-to-end latency = when the routed lead / applied event committed - the webhook's
    2xx (also reported from the scheduled send time); the commit times are Postgres's own
    (track_commit_timestamp), read after the phase (bench/e2e/observe.py), so nothing
    polls the system while it is measured; each consumer group's lag is sampled every
    second;
  - after the sending stops it waits for every consumer's lag to reach 0.
Prints a table; writes results.json and latency.png to bench/results/e2e-<date>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from hdrh.histogram import HdrHistogram

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from client import Done, Pool  # noqa: E402
from observe import check_commit_times, commit_times  # noqa: E402
from system import BOOTSTRAP, System, add_reps, snapshot  # noqa: E402
from workload import CYCLE, EVENTS_PER_CYCLE, Request, Workload  # noqa: E402

TOPICS_OF = {
    "router": {"forms", "signups", "people", "accounts", "opportunities", "activities"},
    "attribution": {"forms", "signups", "people", "opportunities"},
}


def renewals_topics() -> set[str]:
    try:
        from revops.renewals.main import SPEC  # type: ignore[import-not-found]

        return {t.name("").removeprefix("revops.") for t in SPEC.topics}
    except Exception:
        return set()


def hist() -> HdrHistogram:
    return HdrHistogram(1, 600_000_000, 3)  # microseconds, up to 10 min


def pct(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"count": 0}
    return {
        "count": h.get_total_count(),
        "p50_ms": h.get_value_at_percentile(50) / 1000,
        "p99_ms": h.get_value_at_percentile(99) / 1000,
        "p99.9_ms": h.get_value_at_percentile(99.9) / 1000,
        "max_ms": h.get_max_value() / 1000,
    }


class LagReader:
    """One long-lived consumer per group (not subscribed: it never joins the group) to
    read committed and end offsets cheaply every second."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.consumers: dict[str, Any] = {}
        self.parts: dict[str, list[Any]] = {}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        for service in self.system.consumers:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=BOOTSTRAP,
                group_id=f"{self.system.prefix}{service}",
                enable_auto_commit=False,
                request_timeout_ms=5000,
            )
            await consumer.start()
            await consumer._client.force_metadata_update()
            self.consumers[service] = consumer
            self.parts[service] = [
                TopicPartition(t, p)
                for t in self.system.topic_names(service)
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]

    async def read(self) -> dict[str, int]:
        out = {}
        for service, consumer in self.consumers.items():
            parts = self.parts[service]
            ends = await consumer.end_offsets(parts)
            committed = await asyncio.gather(*(consumer.committed(tp) for tp in parts))
            out[service] = sum(ends[tp] - (c or 0) for tp, c in zip(parts, committed, strict=True))
        return out

    async def stop(self) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()


async def run_phase(
    system: System,
    workload: Workload,
    rate: float,
    duration: float,
    first_n: int,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], int]:
    ingest = system.urls("ingest")
    req_rate = rate * len(CYCLE) / EVENTS_PER_CYCLE
    count = int(req_rate * duration)
    now = datetime.now(UTC)
    requests = [
        workload.build(first_n + i, now=now, ingest_url=ingest[(first_n + i) % len(ingest)])
        for i in range(count)
    ]
    targets = [ingest[(first_n + i) % len(ingest)] for i in range(count)]
    lag_reader = LagReader(system)
    await lag_reader.start()

    ingest_h = hist()
    status: Counter[str] = Counter()
    acked: list[tuple[Request, float, float]] = []  # request, scheduled wall, 2xx wall
    timeline: list[tuple[float, float, int]] = []  # offset from start, latency ms, ok
    lag_series: list[dict[str, Any]] = []
    sending = True

    async def sample_lag(t0: float) -> None:
        while sending or len(lag_series) < 2 or any(v > 0 for v in lag_series[-1]["lag"].values()):
            try:
                lag_series.append(
                    {
                        "t": round(time.time() - t0, 2),
                        "lag": await lag_reader.read(),
                        "load1": os.getloadavg()[0],
                    }
                )
            except Exception as exc:
                lag_series.append(
                    {"t": round(time.time() - t0, 2), "error": str(exc)[:200], "lag": {}}
                )
            if not sending and time.time() - t0 > duration + args.drain_timeout:
                return
            await asyncio.sleep(1)

    pools = {url: Pool(url, max(1, args.connections // len(ingest))) for url in ingest}
    for pool in pools.values():
        pool.start()
    outstanding = 0
    all_done = asyncio.Event()
    finished_sending = False

    def answer(i: int, scheduled_wall: float, scheduled_perf: float) -> Done:
        def done(code: int | str, done_perf: float) -> None:
            nonlocal outstanding
            latency_us = int((done_perf - scheduled_perf) * 1_000_000)
            ingest_h.record_value(max(1, latency_us))
            ok = isinstance(code, int) and 200 <= code < 300
            status[str(code)] += 1
            timeline.append((scheduled_wall - t0_wall, latency_us / 1000, int(ok)))
            if ok:
                acked.append(
                    (requests[i], scheduled_wall, scheduled_wall + (done_perf - scheduled_perf))
                )
            outstanding -= 1
            if finished_sending and outstanding == 0:
                all_done.set()

        return done

    cpu_before = system.cpu_seconds()
    held_before = await held_leads(system)
    t0_wall = time.time()
    t0_perf = time.perf_counter()
    lag_task = asyncio.create_task(sample_lag(t0_wall))
    behind_max = 0.0
    for i in range(count):
        offset = i / req_rate
        delay = t0_perf + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind_max = max(behind_max, -delay)
        request = requests[i]
        outstanding += 1
        pools[targets[i]].submit(
            "POST",
            request.path,
            request.headers,
            request.body,
            answer(i, t0_wall + offset, t0_perf + offset),
        )
    finished_sending = True
    if outstanding:
        await all_done.wait()
    for pool in pools.values():
        await pool.close()
    sent_for = time.time() - t0_wall
    sending = False
    await lag_task
    drained_at = time.time() - t0_wall
    cpu_used = {k: v - cpu_before.get(k, 0.0) for k, v in system.cpu_seconds().items()}
    held = {k: v - held_before.get(k, 0.0) for k, v in (await held_leads(system)).items()}
    await lag_reader.stop()
    seen = await commit_times(system.consumers, since=t0_wall - 5)

    # --- end to end -------------------------------------------------------------------------
    renewals = renewals_topics()
    topics_of = dict(TOPICS_OF, renewals=renewals)
    e2e = {"lead": hist(), "lead_from_scheduled": hist()}
    for service in system.consumers:
        e2e[service] = hist()
    unseen: Counter[str] = Counter()
    early = 0
    e2e_timeline: list[tuple[float, float]] = []
    for request, sched, ack in acked:
        if request.email is not None:
            at = seen.get(f"lead:{request.email}")
            if at is None:
                unseen["lead"] += 1
            else:
                early += at < ack
                e2e["lead"].record_value(max(1, int((at - ack) * 1e6)))
                e2e["lead_from_scheduled"].record_value(max(1, int((at - sched) * 1e6)))
                e2e_timeline.append((sched - t0_wall, (at - ack) * 1000))
        for service in system.consumers:
            for event_id, topic in zip(request.event_ids, request.topics, strict=True):
                if topic not in topics_of.get(service, ()):
                    continue
                at = seen.get(f"{service}:{event_id}")
                if at is None:
                    unseen[service] += 1
                else:
                    e2e[service].record_value(max(1, int((at - ack) * 1e6)))
    events_acked = sum(len(r.event_ids) for r, _, _ in acked)
    lag_max = {
        s: max((p["lag"].get(s, 0) for p in lag_series), default=0) for s in system.consumers
    }
    # Each consumer's throughput over the phase: its events / the time its lag took to be
    # back at 0 after the last send (the lag is sampled every second: +-1 s).
    consumer_rate: dict[str, float] = {}
    for service in system.consumers:
        events = sum(1 for r, _, _ in acked for t in r.topics if t in topics_of.get(service, ()))
        zero_at = next(
            (p["t"] for p in lag_series if p["t"] >= sent_for and p["lag"].get(service, 1) == 0),
            None,
        )
        if zero_at:
            consumer_rate[service] = round(events / zero_at, 1)
    result = {
        "rate_events_per_s": rate,
        "requests_per_s": round(req_rate, 1),
        "duration_s": duration,
        "requests": count,
        "events_acknowledged": events_acked,
        "sent_for_s": round(sent_for, 2),
        "sender_behind_max_ms": round(behind_max * 1000, 1),
        "achieved_events_per_s": round(events_acked / sent_for, 1),
        "drained_after_s": round(drained_at - sent_for, 1),
        "status": dict(status),
        "errors": sum(v for k, v in status.items() if not k.startswith("2")),
        "ingest_latency": pct(ingest_h),
        "e2e": {k: pct(h) for k, h in e2e.items()},
        "e2e_unseen": dict(unseen),
        "lead_committed_before_2xx": early,
        # Leads the router held for CRM state in this phase, by how they were released
        # (empty for a version without causal order).
        "router_leads_held": {k: int(v) for k, v in held.items()},
        "lag_max": lag_max,
        "consumer_events_per_s": consumer_rate,
        # Where the 2 cores went from the first send until every lag was 0: CPU seconds
        # per part, and the share of all cores' time over that span.
        "cpu_s": {k: round(v, 1) for k, v in cpu_used.items()},
        "cpu_share": {
            k: round(v / (drained_at * (os.cpu_count() or 1)), 3) for k, v in cpu_used.items()
        },
        "load1_max": max((p.get("load1", 0) for p in lag_series), default=0),
        "lag_series": lag_series,
        "timeline": timeline,
        "e2e_timeline": e2e_timeline,
    }
    return result, first_n + count


async def held_leads(system: System) -> dict[str, float]:
    """revops_router_leads_held_total by outcome, summed over the router instances."""
    out: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for url in system.urls("router"):
            text = (await client.get(f"{url}/metrics")).text
            for line in text.splitlines():
                if line.startswith("revops_router_leads_held_total{"):
                    outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                    out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(results), figsize=(6 * len(results), 10), squeeze=False)
    for col, r in enumerate(results):
        rate = r["rate_events_per_s"]
        for row, (series, label) in enumerate(
            (
                (r["timeline"], "ingest latency (ms, from scheduled)"),
                (r["e2e_timeline"], "lead e2e (ms, from 2xx)"),
            )
        ):
            ax = axes[row][col]
            buckets: dict[int, list[float]] = {}
            for item in series:
                buckets.setdefault(int(item[0]), []).append(item[1])
            xs = sorted(buckets)
            for q, style in ((0.5, "-"), (0.99, "--")):
                ys = []
                for x in xs:
                    values = sorted(buckets[x])
                    ys.append(values[min(len(values) - 1, int(q * len(values)))])
                ax.plot(xs, ys, style, label=f"p{int(q * 100)} per second")
            ax.set_yscale("log")
            ax.set_title(f"{rate:.0f} events/s: {label}")
            ax.set_xlabel("s since start")
            ax.legend()
        ax = axes[2][col]
        for service in r["lag_max"]:
            ax.plot(
                [p["t"] for p in r["lag_series"]],
                [p["lag"].get(service, 0) for p in r["lag_series"]],
                label=service,
            )
        ax.set_title(f"{rate:.0f} events/s: consumer lag (records)")
        ax.set_xlabel("s since start")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _proc_field(path: str, field: str) -> str:
    """The value of `field` in a /proc file such as /proc/cpuinfo, or "" where it is absent."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    cpu = _proc_field("/proc/cpuinfo", "model name")
    mem = _proc_field("/proc/meminfo", "MemTotal")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
        "load_avg_at_start": os.getloadavg(),
    }


def _percentiles(p: dict[str, float]) -> str:
    return f"{p.get('p50_ms', 0):.1f}/{p.get('p99_ms', 0):.1f}/{p.get('p99.9_ms', 0):.1f}"


def table(results: list[dict[str, Any]], services: list[str]) -> str:
    head = (
        f"{'events/s':>9} {'achieved':>9} {'errors':>6}"
        f" | {'ingest p50/p99/p99.9 ms':>24} | {'lead e2e p50/p99/p99.9 ms':>26}"
    )
    for s in services:
        head += f" | {s + ' e2e p99':>16}"
    head += f" | {'max lag':>14} | {'drain s':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        i, e = r["ingest_latency"], r["e2e"]["lead"]
        line = (
            f"{r['rate_events_per_s']:>9.0f} {r['achieved_events_per_s']:>9.0f} {r['errors']:>6}"
            f" | {_percentiles(i):>24} | {_percentiles(e):>26}"
        )
        for s in services:
            line += f" | {r['e2e'][s].get('p99_ms', 0):>16.1f}"
        line += f" | {max(r['lag_max'].values(), default=0):>14} | {r['drained_after_s']:>7}"
        lines.append(line)
    lines.append("CPU share of the machine's cores, first send to lag 0:")
    for r in results:
        shares = sorted(r["cpu_share"].items(), key=lambda kv: -kv[1])
        lines.append(
            f"{r['rate_events_per_s']:>9.0f}  "
            + ", ".join(f"{k} {v:.0%}" for k, v in shares if v >= 0.005)
            + f"  (all: {sum(v for _, v in shares):.0%})"
        )
    return "\n".join(lines)


async def router_queues(system: System) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            system.urls("router")[0] + "/queues",
            headers={"Authorization": "Bearer dev-admin-token"},
        )
        return response.json()


async def main_async(args: argparse.Namespace) -> int:
    n = args.instances
    system = System(instances={"ingest": args.ingest, "router": n, "attribution": n, "renewals": n})
    if args.sut != "worktree":
        system.sut = snapshot(args.sut)
    args.out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    info = {
        "machine": machine(),
        "command": " ".join(["uv run python bench/e2e/load.py", *sys.argv[1:]]),
    }
    try:
        await asyncio.to_thread(system.start)
        await check_commit_times()
        await asyncio.to_thread(add_reps, system.urls("router")[0])
        info.update(
            sut=str(system.sut),
            run_id=system.run_id,
            prefix=system.prefix,
            without=system.without,
            instances=system.instances,
        )
        started = ", ".join(f"{s} x{len(v)}" for s, v in system.procs.items())
        print(
            f"system {system.run_id}: {started}"
            + (f"; WITHOUT {', '.join(system.without)} (did not start)" if system.without else "")
        )
        if args.instances > 1:
            info["assignment"] = {s: await system.assignment(s) for s in system.consumers}
        workload = Workload(system.run_id)
        next_n = 0
        if args.warmup > 0:
            # A cold system's first seconds (empty tables, statements not yet prepared,
            # connections not yet open) are not its steady state: sent, not measured.
            rate = args.rates[0]
            print(f"-- warm-up: {rate:.0f} events/s for {args.warmup:.0f} s, not measured ...")
            warm, next_n = await run_phase(system, workload, rate, args.warmup, next_n, args)
            info["warmup"] = {
                k: warm[k]
                for k in (
                    "rate_events_per_s",
                    "duration_s",
                    "achieved_events_per_s",
                    "errors",
                    "e2e",
                )
            }
        for rate in args.rates:
            print(f"-- {rate:.0f} events/s for {args.duration:.0f} s ...", flush=True)
            result, next_n = await run_phase(system, workload, rate, args.duration, next_n, args)
            results.append(result)
            print(table([result], system.consumers), flush=True)
        if args.instances > 1:
            info["assignment_after"] = {s: await system.assignment(s) for s in system.consumers}
            info["queues"] = await router_queues(system)
    finally:
        if not args.keep:
            await asyncio.to_thread(system.stop)
            await asyncio.to_thread(system.delete_topics)
    print()
    print(table(results, system.consumers))
    slim = [{k: v for k, v in r.items() if k not in ("timeline", "e2e_timeline")} for r in results]
    (args.out / "results.json").write_text(
        json.dumps({**info, "results": slim}, indent=1, default=str)
    )
    plot(results, args.out / "latency.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'latency.png'}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,500,1000", help="events/s, comma-separated")
    parser.add_argument("--duration", type=float, default=60, help="seconds per rate")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0,
        help="seconds at the first rate before the measured phases (not measured)",
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="instances of each consumer service"
    )
    parser.add_argument("--ingest", type=int, default=1, help="ingest processes")
    parser.add_argument(
        "--connections", type=int, default=64, help="keep-alive connections to ingest"
    )
    parser.add_argument("--drain-timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--sut",
        default="HEAD",
        help="commit to run (exported to /tmp/revops-sut-<sha>, so others' uncommitted edits "
        "do not change what is measured), or 'worktree' to run this tree's .venv",
    )
    parser.add_argument("--keep", action="store_true", help="leave the system running")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    if args.out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
        args.out = HERE.parent / "results" / f"e2e-{stamp}"
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
