"""Jepsen-style fault check: sustained signed webhooks, faults injected, then what was
acknowledged is compared with what every service stored.

    uv sync --group bench
    uv run python bench/faults/check.py                      # 200 events/s, 5 kills each
    uv run python bench/faults/check.py --kills 2 --instances 1 --rate 100
    uv run python bench/faults/check.py --brokers 3 --rate 100 --seed 7   # replicated Kafka

Starts its own system (bench/system.py: ports 18000+, prefix bench-<run>-, database
revops_bench, a snapshot of --sut), sends the mix of bench/e2e/workload.py open-loop at
--rate events/s (each request built and signed when it is sent; every event id known in
advance) and records every answer. Meanwhile, one after the other:
  1. kill -9 a random instance of each consumer service --kills times, at random moments
     (2-8 s apart), restarting it at once;
  2. SIGSTOP a consumer instance for session timeout + 5 s, then SIGCONT;
  3. kill -9 the Kafka broker, keep it down --kafka-down s, start it (deploy/local/kafka.sh);
  4. restart Postgres (deploy/local/postgres.sh stop; start).
After each fault it times how long every consumer group's lag takes to come back under
--lag-ok records (1 s of load by default: under sustained load the lag is never exactly 0)
and, after the load stops, to reach exactly 0.
Then, read as each service's own role:
  lost     = an acknowledged (2xx) event id missing from a consuming service's inbox, or an
             acknowledged form/sign-up without its lead in router.leads;
  twice    = a lead email with more than one row, a subject with more than one round-robin
             turn (router.queue_turns), a touch stored twice (attribution.touches);
  phantom  = an inbox id or a lead this run never sent; also reported apart: events of a
             request answered non-2xx that were nevertheless stored (not a failure: a 503
             means "not acknowledged, resend", and the resend is deduplicated);
  while the broker was down: every answer must be a 503 within 2 s, never a 2xx.
Writes bench/results/faults-<date>.json and prints a summary; exit 1 if a check failed.

Three-broker mode (`--brokers 3`): the system runs on the three-node cluster of
deploy/local/kafka-cluster.sh (started if it is not up; `make infra BROKERS=3` starts it
too), its topics with 3 replicas and min.insync.replicas 2. The one fault is the crash of
the broker that leads most of the run's partitions: kill -9, kept down --kafka-down s,
then started again (consumer kills only with an explicit --kills). Meanwhile an admin
client times the leader election (until no partition is led by the dead broker). Checks:
0 lost, 0 twice, 0 phantoms as above; while the broker is down every answer is a 2xx or a
503 within 2 s (never a hang); no 503 for a request sent after the election.

Kafka and Postgres are shared by everything on this machine: the broker and database
restarts interrupt other work for ~30 s. They are started again at the end in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLUSTER = HERE.parent.parent / "deploy" / "local" / "kafka-cluster.sh"


def _three_brokers_asked() -> bool:
    argv = sys.argv[1:]
    return "--brokers=3" in argv or any(
        a == "--brokers" and i + 1 < len(argv) and argv[i + 1] == "3" for i, a in enumerate(argv)
    )


# bench/system.py and bench/e2e/load.py read the bootstrap servers from the environment
# when imported; in three-broker mode they point at the cluster, and every topic the run
# creates gets three replicas.
if _three_brokers_asked():
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = subprocess.run(
        [str(CLUSTER), "bootstrap"], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["TOPIC_REPLICATION_FACTOR"] = "3"

sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "e2e"))

from client import Done, Pool  # noqa: E402
from lateness import LoopLateness  # noqa: E402
from leaders import every_broker_knows, partition_leaders, until_elected  # noqa: E402
from load import TOPICS_OF, LagReader, machine, renewals_topics, router_queues  # noqa: E402
from system import BOOTSTRAP, ROOT, System, add_reps, snapshot  # noqa: E402
from workload import CYCLE, EVENTS_PER_CYCLE, Workload  # noqa: E402


class Recorder:
    """Every request sent: n, scheduled time, answer, latency."""

    def __init__(self) -> None:
        self.sent: dict[int, dict[str, Any]] = {}

    def note(self, n: int, **fields: Any) -> None:
        self.sent.setdefault(n, {}).update(fields)


async def load(
    system: System, workload: Workload, rate: float, stop: asyncio.Event, rec: Recorder, conns: int
) -> None:
    ingest = system.urls("ingest")
    req_rate = rate * len(CYCLE) / EVENTS_PER_CYCLE
    pools = {url: Pool(url, max(1, conns // len(ingest)), timeout_s=10) for url in ingest}
    for pool in pools.values():
        pool.start()
    outstanding = 0
    drained = asyncio.Event()

    def answer(n: int, sched_perf: float) -> Done:
        def done(status: int | str, done_perf: float) -> None:
            nonlocal outstanding
            rec.note(n, status=status, latency_s=done_perf - sched_perf)
            outstanding -= 1
            if stop.is_set() and outstanding == 0:
                drained.set()

        return done

    t0_wall, t0_perf, n = time.time(), time.perf_counter(), 0
    while not stop.is_set():
        offset = n / req_rate
        delay = t0_perf + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        url = ingest[n % len(ingest)]
        request = workload.build(n, ingest_url=url)
        rec.note(
            n,
            kind=request.kind,
            ids=request.event_ids,
            topics=request.topics,
            email=request.email,
            sched=t0_wall + offset,
        )
        outstanding += 1
        pools[url].submit(
            "POST", request.path, request.headers, request.body, answer(n, t0_perf + offset)
        )
        n += 1
    if outstanding:
        await drained.wait()
    for pool in pools.values():
        await pool.close()


class Lag:
    def __init__(self, system: System) -> None:
        self.system = system
        self.reader: LagReader | None = None
        self.series: list[dict[str, Any]] = []

    async def read(self) -> dict[str, int] | None:
        try:
            if self.reader is None:
                self.reader = LagReader(self.system)
                await asyncio.wait_for(self.reader.start(), 10)
            lags = await asyncio.wait_for(self.reader.read(), 10)
        except Exception as exc:
            self.series.append({"t": time.time(), "error": str(exc)[:120]})
            if self.reader is not None:
                # A reader that cannot even stop is dropped all the same.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.reader.stop(), 5)
            self.reader = None
            return None
        self.series.append({"t": time.time(), "lag": lags})
        return lags

    async def until(self, ok: int, timeout_s: float) -> float | None:
        """Seconds until every group's lag <= ok (None: not within timeout)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            lags = await self.read()
            if lags is not None and all(v <= ok for v in lags.values()):
                return round(time.monotonic() - started, 1)
            await asyncio.sleep(1)
        return None


async def faults(
    system: System, args: argparse.Namespace, lag: Lag, log: list[dict[str, Any]]
) -> None:
    try:
        await _faults(system, args, lag, log)
    except Exception as exc:
        log.append(
            {
                "fault": "checker error",
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "at": time.time(),
            }
        )
        print(f"  fault injection failed: {exc}", flush=True)
        if System.kafka_pid() is None or not _alive(System.kafka_pid()):
            await asyncio.to_thread(System.kafka_start)


async def _faults(
    system: System, args: argparse.Namespace, lag: Lag, log: list[dict[str, Any]]
) -> None:
    rng = random.Random(args.seed)
    ok = args.lag_ok if args.lag_ok is not None else int(args.rate)

    async def settle(entry: dict[str, Any]) -> None:
        entry["lag_ok_after_s"] = await lag.until(ok, args.recovery_timeout)
        # What the issue asks: from the fault itself (a killed instance's restart included).
        if entry["lag_ok_after_s"] is not None:
            entry["recovered_after_fault_s"] = round(time.time() - entry["at"], 1)
        log.append(entry)
        print(f"  {entry}", flush=True)

    await asyncio.sleep(5)
    if args.brokers == 3:
        await kill_the_leading_broker(system, args, rng, lag, log)
    for service in system.consumers:
        for k in range(args.kills):
            await asyncio.sleep(rng.uniform(2, 8))
            index = rng.randrange(len(system.procs[service]))
            at = time.time()
            pid = await asyncio.to_thread(system.signal, service, index, signal.SIGKILL)
            ready_s = await asyncio.to_thread(system.restart, service, index)
            await settle(
                {
                    "fault": "kill -9",
                    "service": service,
                    "instance": index,
                    "pid": pid,
                    "k": k + 1,
                    "at": at,
                    "restart_ready_s": round(ready_s, 1),
                }
            )
    if args.freeze and args.brokers == 1:
        service = system.consumers[0]
        await asyncio.sleep(rng.uniform(2, 5))
        at = time.time()
        system.signal(service, 0, signal.SIGSTOP)
        await asyncio.sleep(args.freeze_s)
        system.signal(service, 0, signal.SIGCONT)
        await settle(
            {
                "fault": "SIGSTOP",
                "service": service,
                "instance": 0,
                "frozen_s": args.freeze_s,
                "at": at,
            }
        )
    if args.kafka_down > 0 and args.brokers == 1:
        await asyncio.sleep(rng.uniform(2, 5))
        at = time.time()
        # In a thread: a killed JVM takes 1-3 s to exit (seen here), and waiting for it on
        # the event loop would stall the load generator, not ingest.
        pid = await asyncio.to_thread(system.kafka_kill9)
        await asyncio.sleep(args.kafka_down)
        back_at = time.time()
        start_s = await asyncio.to_thread(system.kafka_start)
        await settle(
            {
                "fault": "kill -9 kafka",
                "pid": pid,
                "at": at,
                "start_at": back_at,
                "down_s": round(back_at - at, 1),
                "kafka_start_s": round(start_s, 1),
            }
        )
    if args.postgres and args.brokers == 1:
        await asyncio.sleep(rng.uniform(2, 5))
        at = time.time()
        restart_s = await asyncio.to_thread(system.postgres_restart)
        await settle({"fault": "restart postgres", "at": at, "restart_s": round(restart_s, 1)})
    await asyncio.sleep(5)


# --- three-broker mode ---------------------------------------------------------------------


def cluster(*args: str, timeout_s: float = 300) -> str:
    return subprocess.run(
        [str(CLUSTER), *args], capture_output=True, text=True, check=True, timeout=timeout_s
    ).stdout.strip()


async def kill_the_leading_broker(
    system: System,
    args: argparse.Namespace,
    rng: random.Random,
    lag: Lag,
    log: list[dict[str, Any]],
) -> None:
    await asyncio.sleep(rng.uniform(5, 10))
    leaders = await partition_leaders(system)
    topic_names = sorted({tp.rsplit("/", 1)[0] for tp in leaders})
    led = Counter(leaders.values())
    victim = led.most_common(1)[0][0]
    pid = int(await asyncio.to_thread(cluster, "pid", str(victim)))
    at = time.time()
    os.kill(pid, signal.SIGKILL)
    first_elected_at, elected_at = await until_elected(system, victim, topic_names, 60)
    elected_leaders = await partition_leaders(system) if elected_at else {}
    # With two brokers left the system goes on: its recovery is timed while this one is
    # still down, not after it is back.
    ok = args.lag_ok if args.lag_ok is not None else int(args.rate)
    lag_ok_after_s = await lag.until(ok, max(args.recovery_timeout, args.kafka_down))
    recovered_at = time.time() if lag_ok_after_s is not None else None
    down_for = args.kafka_down - (time.time() - at)
    if down_for > 0:
        await asyncio.sleep(down_for)
    back_at = time.time()
    started = time.monotonic()
    await asyncio.to_thread(cluster, "start-node", str(victim))
    entry = {
        "fault": "kill -9 leading broker",
        "node": victim,
        "pid": pid,
        "partitions": len(leaders),
        "partitions_led": led[victim],
        "leaders_before": dict(sorted(Counter(str(n) for n in leaders.values()).items())),
        "leaders_after_election": dict(
            sorted(Counter(str(n) for n in elected_leaders.values()).items())
        ),
        "at": at,
        # The first live broker to know the new leaders, then the last (the election
        # is over for a client only once the broker it asks knows).
        "first_elected_at": first_elected_at,
        "first_broker_knew_s": round(first_elected_at - at, 2) if first_elected_at else None,
        "elected_at": elected_at,
        "election_s": round(elected_at - at, 2) if elected_at else None,
        "start_at": back_at,
        "down_s": round(back_at - at, 1),
        "kafka_start_s": round(time.monotonic() - started, 1),
        "lag_ok_after_s": lag_ok_after_s,
        "recovered_after_fault_s": round(recovered_at - at, 1) if recovered_at else None,
        "recovered_before_the_broker_was_back": recovered_at is not None and recovered_at < back_at,
    }
    # And once it is back (it catches up as a follower; leaders stay where they are).
    entry["lag_ok_after_restart_s"] = await lag.until(ok, args.recovery_timeout)
    log.append(entry)
    print(f"  {entry}", flush=True)


def leader_kill_verdict(rec: Recorder, log: list[dict[str, Any]]) -> dict[str, Any]:
    """What ingest answered from the crash of the leading broker until it came back."""
    kill = next((f for f in log if f["fault"] == "kill -9 leading broker"), None)
    if kill is None:
        return {}
    elected = kill["elected_at"]
    down = [
        r for r in rec.sent.values() if "sched" in r and kill["at"] <= r["sched"] < kill["start_at"]
    ]
    codes = Counter(str(r.get("status")) for r in down)
    refused = [r for r in down if not str(r.get("status")).startswith("2")]
    after = [
        r
        for r in rec.sent.values()
        if "sched" in r and elected is not None and r["sched"] >= elected
    ]
    refused_after = [r for r in after if not str(r.get("status")).startswith("2")]
    phases = {
        "before the kill": (float("-inf"), kill["at"]),
        "kill to election": (kill["at"], elected or kill["start_at"]),
        "election to restart": (elected or kill["start_at"], kill["start_at"]),
        "from the restart on": (kill["start_at"], float("inf")),
    }
    by_phase = {
        name: dict(
            Counter(
                str(r.get("status")) for r in rec.sent.values() if lo <= r.get("sched", lo) < hi
            )
        )
        for name, (lo, hi) in phases.items()
    }
    first_sent = min((r["sched"] for r in rec.sent.values() if "sched" in r), default=0)
    refused_per_second = Counter(
        int(r["sched"] - first_sent)
        for r in rec.sent.values()
        if "sched" in r and not str(r.get("status")).startswith("2")
    )
    slow_per_second = Counter(
        f"{int(r['sched'] - first_sent)} ({r.get('status')})"
        for r in rec.sent.values()
        if "sched" in r and r.get("latency_s", 0) > 2
    )
    return {
        "kill_s_after_load_start": round(kill["at"] - first_sent, 1),
        "answered_after_2s_per_second_of_load": dict(sorted(slow_per_second.items())),
        "non_2xx_per_second_of_load": dict(sorted(refused_per_second.items())),
        "answers_by_phase": by_phase,
        "requests_while_down": len(down),
        "answers_while_down": dict(codes),
        "answered_after_2s": sum(1 for r in down if r.get("latency_s", 0) > 2),
        "latency_max_s": round(max((r.get("latency_s", 0) for r in down), default=0), 3),
        "election_s": kill["election_s"],
        "non_2xx": len(refused),
        "last_non_2xx_sent_after_kill_s": (
            round(max(r["sched"] for r in refused) - kill["at"], 2) if refused else None
        ),
        "requests_after_election": len(after),
        "non_2xx_after_election": len(refused_after),
        "non_2xx_after_election_answers": dict(
            Counter(str(r.get("status")) for r in refused_after)
        ),
    }


def ingest_durations(system: System, log: list[dict[str, Any]]) -> dict[str, Any]:
    """Ingest's own time per request (its access log: from the request reaching the app
    to its answer) while the broker was down: what the load generator measures on top of
    it is queueing before the app, or the generator's own delay on a busy machine."""
    kill = next(f for f in log if f["fault"] == "kill -9 leading broker")
    durations: list[float] = []
    for path in sorted((system.dir / "logs").glob("ingest-*.log")):
        for line in path.read_text().splitlines():
            if '"message": "request"' not in line:
                continue
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            if kill["at"] <= at < kill["start_at"] + 2:
                durations.append(entry["duration_ms"])
    return {
        "requests": len(durations),
        "max_ms": max(durations, default=None),
        "over_2s": sum(1 for d in durations if d > 2000),
    }


async def until_no_lead_is_held(system: System, timeout_s: float) -> float | None:
    """Seconds until the router holds no lead for CRM state (it routes one at the latest
    after CRM_STATE_WAIT_S), None after ``timeout_s``; a version without held leads: 0."""
    import asyncpg

    started = time.monotonic()
    conn = await asyncpg.connect("postgresql://router:router@127.0.0.1:5432/revops_bench")
    try:
        while time.monotonic() - started < timeout_s:
            try:
                held = await conn.fetchval("SELECT count(*) FROM router.held_leads")
            except asyncpg.UndefinedTableError:
                return 0.0
            if held == 0:
                return round(time.monotonic() - started, 1)
            await asyncio.sleep(0.2)
        return None
    finally:
        await conn.close()


async def stored(system: System) -> dict[str, Any]:
    import asyncpg

    out: dict[str, Any] = {}
    for service in system.consumers:
        conn = await asyncpg.connect(
            f"postgresql://{service}:{service}@127.0.0.1:5432/revops_bench"
        )
        try:
            # The roster's rep changes come from the run's own set-up (the reps API), not
            # from the webhooks it sends: they are neither sent nor phantoms.
            out[f"{service}.inbox"] = {
                r[0]
                for r in await conn.fetch(
                    f"SELECT event_id FROM {service}.inbox WHERE topic NOT LIKE '%revops.roster'"
                )
            }
            if service == "router":
                out["router.leads"] = [
                    r[0] for r in await conn.fetch("SELECT email FROM router.leads")
                ]
                out["router.turns_twice"] = [
                    dict(r)
                    for r in await conn.fetch(
                        "SELECT subject_id, count(*) AS turns FROM router.queue_turns "
                        "GROUP BY subject_id HAVING count(*) > 1"
                    )
                ]
                out["router.turns"] = await conn.fetchval("SELECT count(*) FROM router.queue_turns")
                out["router.turn_slots_twice"] = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT queue, slot FROM router.queue_turns "
                    "GROUP BY queue, slot HAVING count(*) > 1) t"
                )
                out["router.outbox_unsent"] = await conn.fetchval(
                    "SELECT count(*) FROM router.outbox WHERE sent_at IS NULL"
                )
            if service == "attribution":
                out["attribution.touches_twice"] = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT touch_id FROM attribution.touches "
                    "GROUP BY touch_id HAVING count(*) > 1) t"
                )
                out["attribution.touches"] = await conn.fetchval(
                    "SELECT count(*) FROM attribution.touches"
                )
        finally:
            await conn.close()
    return out


async def dead_letters(system: System) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        topics = [
            t for t in await consumer.topics() if t.startswith(system.prefix) and t.endswith(".dlq")
        ]
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        if not parts:
            return {}
        ends = await consumer.end_offsets(parts)
        begins = await consumer.beginning_offsets(parts)
        counts: Counter[str] = Counter()
        for tp in parts:
            counts[tp.topic.removeprefix(system.prefix)] += ends[tp] - begins[tp]
        return {k: v for k, v in counts.items() if v}
    finally:
        await consumer.stop()


def verdict(
    rec: Recorder,
    db: dict[str, Any],
    consumers: list[str],
    log: list[dict[str, Any]],
    brokers: int = 1,
) -> dict[str, Any]:
    topics_of = dict(TOPICS_OF, renewals=renewals_topics())
    sent_ids: set[str] = set()
    sent_emails: set[str] = set()
    lost: Counter[str] = Counter()
    lost_examples: dict[str, list[str]] = {}
    stored_not_acked: Counter[str] = Counter()
    stored_not_acked_at: list[float] = []
    acked = 0
    statuses: Counter[str] = Counter()
    leads = Counter(db.get("router.leads", []))
    for n, r in rec.sent.items():
        if "ids" not in r:
            continue
        sent_ids.update(r["ids"])
        if r["email"]:
            sent_emails.add(r["email"])
        status = r.get("status")
        statuses[str(status)] += 1
        ok = isinstance(status, int) and 200 <= status < 300
        acked += ok
        for service in consumers:
            inbox = db[f"{service}.inbox"]
            for event_id, topic in zip(r["ids"], r["topics"], strict=True):
                if topic not in topics_of.get(service, ()):
                    continue
                if ok and event_id not in inbox:
                    lost[service] += 1
                    lost_examples.setdefault(service, []).append(f"{n}:{r['kind']}:{event_id}")
                if not ok and event_id in inbox:
                    stored_not_acked[f"{service} (answer {status})"] += 1
                    stored_not_acked_at.append(r["sched"])
        if r["email"] and "router" in consumers:
            if ok and r["email"] not in leads:
                lost["router lead"] += 1
                lost_examples.setdefault("router lead", []).append(f"{n}:{r['email']}")
            if not ok and r["email"] in leads:
                stored_not_acked[f"router lead (answer {status})"] += 1
    phantoms = {s: sorted(db[f"{s}.inbox"] - sent_ids)[:20] for s in consumers}
    phantom_counts = {s: len(db[f"{s}.inbox"] - sent_ids) for s in consumers}
    if "router" in consumers:
        phantom_counts["router lead"] = sum(1 for e in leads if e not in sent_emails)
    twice = {
        "router lead rows per email > 1": sum(1 for c in leads.values() if c > 1),
        "router subjects with > 1 round-robin turn": len(db.get("router.turns_twice", [])),
        "router (queue, slot) used twice": db.get("router.turn_slots_twice", 0),
        "attribution touches stored twice": db.get("attribution.touches_twice", 0),
    }
    # While the broker was down: answers to requests scheduled in [kill, start).
    kafka = next((f for f in log if f["fault"] == "kill -9 kafka"), None)
    down: dict[str, Any] = {}
    if kafka:
        inside = [
            r
            for r in rec.sent.values()
            if "sched" in r and kafka["at"] + 0.5 <= r["sched"] < kafka["start_at"]
        ]
        codes = Counter(str(r.get("status")) for r in inside)
        slow = [r["latency_s"] for r in inside if r.get("latency_s", 0) > 2]
        down = {
            "requests": len(inside),
            "answers": dict(codes),
            "2xx": sum(v for k, v in codes.items() if k.startswith("2")),
            "answered_after_2s": len(slow),
            "latency_max_s": round(max((r.get("latency_s", 0) for r in inside), default=0), 3),
            "first_0.5s_excluded": "requests already in flight when the broker died may be acked",
        }
    recovery_ok = all(
        f.get("recovered_after_fault_s") is not None and f["recovered_after_fault_s"] <= 60
        for f in log
        if f["fault"] != "checker error"
    ) and not any(f["fault"] == "checker error" for f in log)
    passed = {
        "0 acknowledged lost": sum(lost.values()) == 0,
        "0 applied twice": sum(twice.values()) == 0,
        "0 phantoms": sum(phantom_counts.values()) == 0,
        "lag back within 60 s after each fault": recovery_ok,
    }
    leader_kill = leader_kill_verdict(rec, log)
    if brokers == 1:
        passed["broker down: 503 within 2 s, never 2xx"] = (
            bool(down)
            and down["2xx"] == 0
            and down["answered_after_2s"] == 0
            and set(down["answers"]) <= {"503"}
        )
    else:
        passed["leading broker killed: leaders elected"] = bool(leader_kill) and (
            leader_kill["election_s"] is not None
        )
        passed["broker down: only 2xx or 503, each within 2 s"] = (
            bool(leader_kill)
            and leader_kill["answered_after_2s"] == 0
            and all(k.startswith("2") or k == "503" for k in leader_kill["answers_while_down"])
        )
        passed["no 503 once a new leader is elected"] = (
            bool(leader_kill) and leader_kill["non_2xx_after_election"] == 0
        )
    return {
        "requests": len(rec.sent),
        "acknowledged_requests": acked,
        "answers": dict(statuses),
        "lost": dict(lost),
        "lost_examples": {k: v[:10] for k, v in lost_examples.items()},
        "applied_twice": twice,
        "phantoms": phantom_counts,
        "phantom_examples": {k: v for k, v in phantoms.items() if v},
        "stored_but_not_acknowledged": dict(stored_not_acked),
        # Which fault those requests followed: each is counted under the last fault
        # injected before it was sent.
        "stored_but_not_acknowledged_sent": _after_which_fault(stored_not_acked_at, log),
        "while_broker_down": down,
        "leading_broker_killed": leader_kill,
        "passed": passed,
    }


def _after_which_fault(sent_at: list[float], log: list[dict[str, Any]]) -> dict[str, int]:
    faults = sorted((f for f in log if "at" in f), key=lambda f: f["at"])
    counts: Counter[str] = Counter()
    for t in sent_at:
        before = [f for f in faults if f["at"] <= t]
        if before:
            f = before[-1]
            counts[f"{f['fault']} {f.get('service', '')}".strip() + f" @{f['at']:.0f}"] += 1
        else:
            counts["before any fault"] += 1
    return dict(counts)


async def main_async(args: argparse.Namespace) -> int:
    n = args.instances
    system = System(
        instances={"ingest": args.ingest, "router": n, "attribution": n, "renewals": n},
        extra_env={"CONSUMER_SESSION_TIMEOUT_MS": str(args.session_timeout_ms)},
    )
    if args.sut != "worktree":
        system.sut = snapshot(args.sut)
    args.freeze_s = args.session_timeout_ms / 1000 + 5
    if args.brokers == 3 and args.kills is None:
        args.kills = 0
    elif args.kills is None:
        args.kills = 5
    if args.brokers == 3:
        # The cluster is started if it is not up (and left running, like the single broker).
        print(await asyncio.to_thread(cluster, "start"), flush=True)
    rec = Recorder()
    log: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "brokers": args.brokers,
        "bootstrap": BOOTSTRAP,
        "machine": machine(),
        "command": " ".join(["uv run python bench/faults/check.py", *sys.argv[1:]]),
    }
    lag = Lag(system)
    try:
        await asyncio.to_thread(system.start)
        if args.brokers == 3:
            # Each broker learns of new topics from the metadata log on its own; until all
            # do, a producer asking a late one is told the topic has no leader (503).
            report["topics_known_by_every_broker_after_s"] = await every_broker_knows(system)
        await asyncio.to_thread(add_reps, system.urls("router")[0])
        report.update(
            sut=str(system.sut),
            run_id=system.run_id,
            without=system.without,
            instances={s: len(v) for s, v in system.procs.items()},
        )
        print(
            f"system {system.run_id}: {report['instances']}"
            + (f"; WITHOUT {', '.join(system.without)} (did not start)" if system.without else ""),
            flush=True,
        )
        await lag.read()  # its first read imports 3 services: seconds, not under load
        stop = asyncio.Event()
        started = time.time()
        sender = asyncio.create_task(
            load(system, Workload(system.run_id), args.rate, stop, rec, args.connections)
        )
        lateness = LoopLateness.start()
        try:
            await faults(system, args, lag, log)
        finally:
            stop.set()
            await sender
            report["generator_loop_late"] = await lateness.stop()
        load_s = time.time() - started
        drained = await lag.until(0, args.recovery_timeout * 2)
        print(f"load stopped after {load_s:.0f} s; every lag 0 after {drained} s", flush=True)
        await asyncio.sleep(2)
        held = await until_no_lead_is_held(system, timeout_s=30)
        print(f"no lead held for CRM state after {held} s", flush=True)
        db = await stored(system)
        dlq = await dead_letters(system)
        result = verdict(rec, db, system.consumers, log, args.brokers)
        result["dead_letters"] = dlq
        if result.get("leading_broker_killed"):
            result["leading_broker_killed"]["ingest_own_durations"] = ingest_durations(system, log)
        if dlq:
            result["passed"]["no dead letters"] = False
        queues = await router_queues(system)
        report.update(
            rate=args.rate,
            load_s=round(load_s, 1),
            lag_zero_after_load_s=drained,
            faults=log,
            result=result,
            queues=queues,
            stored_counts={k: (len(v) if isinstance(v, (set, list)) else v) for k, v in db.items()},
        )
    finally:
        await asyncio.to_thread(system.stop)
        if args.delete_topics:
            await asyncio.to_thread(system.delete_topics)
        if lag.reader is not None:
            with contextlib.suppress(Exception):
                await lag.reader.stop()
        # Leave the shared infrastructure up, whatever happened.
        if args.brokers == 3:
            await asyncio.to_thread(cluster, "start")
        elif System.kafka_pid() is None or not _alive(System.kafka_pid()):
            await asyncio.to_thread(System.kafka_start)
    report["lag_series"] = lag.series
    out = (
        args.out
        or ROOT / "bench" / "results" / f"faults-{datetime.now(UTC).strftime('%Y%m%d-%H%M')}.json"
    )
    out.write_text(json.dumps(report, indent=1, default=str))
    r = report.get("result", {})
    print(
        json.dumps(
            {
                k: r.get(k)
                for k in (
                    "requests",
                    "acknowledged_requests",
                    "answers",
                    "lost",
                    "applied_twice",
                    "phantoms",
                    "stored_but_not_acknowledged",
                    "while_broker_down",
                    "leading_broker_killed",
                    "dead_letters",
                    "passed",
                )
            },
            indent=1,
        )
    )
    for f in log:
        print({k: v for k, v in f.items() if k not in ("at", "start_at", "pid")})
    print(f"wrote {out}")
    return 0 if r and all(r["passed"].values()) else 1


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200, help="events/s during the faults")
    parser.add_argument(
        "--kills",
        type=int,
        default=None,
        help="kill -9 per consumer service (default 5; 0 with --brokers 3)",
    )
    parser.add_argument(
        "--instances", type=int, default=2, help="instances of each consumer service"
    )
    parser.add_argument("--ingest", type=int, default=1)
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=1,
        help="1: the shared broker of make infra; 3: the cluster of deploy/local/kafka-cluster.sh",
    )
    parser.add_argument(
        "--kafka-down", type=float, default=20, help="seconds the broker stays down (0: skip)"
    )
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--no-freeze", dest="freeze", action="store_false")
    parser.add_argument("--session-timeout-ms", type=int, default=10_000)
    parser.add_argument("--lag-ok", type=int, default=None, help="records; default: 1 s of load")
    parser.add_argument("--recovery-timeout", type=float, default=90)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sut", default="HEAD", help="commit to run, or 'worktree'")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep-topics", dest="delete_topics", action="store_false")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
