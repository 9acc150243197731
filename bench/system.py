"""A system under test of its own, beside whatever else runs on this machine.

    uv run python bench/system.py start [--instances 2] [--run-id ID]   # prints the prefix
    uv run python bench/system.py status|lag|stop [--run-id ID]

The system gets its own ports (ingest 18000, router 18001, attribution 18002, renewals
18003; instance i adds 10*i), its own TOPIC_PREFIX (`bench-<run id>-`, topics created
with `revops topics ensure`) and its own database `revops_bench` (schemas emptied at start,
the services migrate them). Processes are started from `.venv/bin/revops-<svc>` with
setsid; their logs go to bench/results/runs/<run id>/logs/. Renewals is included when
`revops-renewals` becomes ready, else the system runs without it and says so.

Faults (used by bench/faults/check.py): `signal(svc, i, SIGKILL/SIGSTOP/SIGCONT)`,
`restart(svc, i)`, `kafka_kill9()` / `kafka_start()`, `postgres_restart()`; and
`lag(svc)` reads the consumer group's lag with `revops.events.admin.group_lag`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "bench" / "results" / "runs"
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PG = os.environ.get("BENCH_PG", "127.0.0.1:5432")
DATABASE = "revops_bench"
BASE_PORT = int(os.environ.get("BENCH_BASE_PORT", "18000"))
SERVICES = ("ingest", "router", "attribution", "renewals")
CONSUMERS = ("router", "attribution", "renewals")
TOKEN = {"Authorization": "Bearer dev-admin-token"}


def db_url(service: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{service}:{service}@{PG}/{DATABASE}"


@dataclass
class Instance:
    service: str
    index: int
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class System:
    run_id: str = field(default_factory=lambda: time.strftime("%m%d%H%M") + uuid.uuid4().hex[:4])
    instances: dict[str, int] = field(
        default_factory=lambda: {"ingest": 1, "router": 1, "attribution": 1, "renewals": 1}
    )
    extra_env: dict[str, str] = field(default_factory=dict)
    # The tree whose .venv/bin/revops-* run: a snapshot of a commit (see `snapshot`), so
    # that files others are editing in the working tree do not change what is measured.
    sut: Path = field(default_factory=lambda: Path(os.environ.get("BENCH_SUT", str(ROOT))))
    procs: dict[str, list[Instance]] = field(default_factory=dict)
    without: list[str] = field(default_factory=list)  # services that could not start

    @property
    def prefix(self) -> str:
        return f"bench-{self.run_id}-"

    @property
    def dir(self) -> Path:
        return RUNS / self.run_id

    @property
    def consumers(self) -> list[str]:
        return [s for s in CONSUMERS if s in self.procs and s not in self.without]

    def urls(self, service: str) -> list[str]:
        return [i.url for i in self.procs.get(service, [])]

    def env(self, service: str, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HTTP_PORT=str(port),
            TOPIC_PREFIX=self.prefix,
            KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP,
            LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        )
        if service != "ingest":
            env["DATABASE_URL"] = db_url(service)
        env.update(self.extra_env)
        return env

    # --- start / stop -----------------------------------------------------------------------

    def start(self, *, fresh: bool = True, ready_timeout_s: float = 120) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(self.sut / ".venv/bin/revops"), "topics", "ensure"],
            env={**os.environ, "TOPIC_PREFIX": self.prefix, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if fresh:
            asyncio.run(self._empty_schemas())
        for offset, service in enumerate(SERVICES):
            count = self.instances.get(service, 0)
            self.procs[service] = [
                Instance(
                    service,
                    i,
                    BASE_PORT + offset + 10 * i,
                    self.dir / "logs" / f"{service}-{i}.log",
                )
                for i in range(count)
            ]
        # One instance of each first (migrations run under an advisory lock anyway).
        for service in SERVICES:
            for inst in self.procs[service][:1]:
                self._spawn(inst)
        for service in SERVICES:
            for inst in self.procs[service][:1]:
                if not self.wait_ready(inst, ready_timeout_s):
                    if service == "renewals":
                        self.without.append("renewals")
                        self.kill_instance(inst)
                        print(f"renewals did not start: {tail(inst.log, 3)}", file=sys.stderr)
                        continue
                    raise RuntimeError(f"{inst.name} not ready; log:\n{tail(inst.log, 30)}")
        for service in SERVICES:
            if service in self.without:
                continue
            for inst in self.procs[service][1:]:
                self._spawn(inst)
            for inst in self.procs[service][1:]:
                if not self.wait_ready(inst, ready_timeout_s):
                    raise RuntimeError(f"{inst.name} not ready; log:\n{tail(inst.log, 30)}")
        for service in self.without:
            self.procs.pop(service, None)
        self.save()

    async def _empty_schemas(self) -> None:
        from revops.events.migrations import drop_all

        for service in CONSUMERS:
            await drop_all(db_url(service), service)

    def _spawn(self, inst: Instance) -> None:
        log = open(inst.log, "ab")  # noqa: SIM115 -- the child keeps it
        inst.proc = subprocess.Popen(
            [str(self.sut / f".venv/bin/revops-{inst.service}")],
            env=self.env(inst.service, inst.port),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        inst.frozen = False

    def wait_ready(self, inst: Instance, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not inst.alive():
                return False
            if ready(inst.url):
                return True
            time.sleep(0.3)
        return False

    def stop(self) -> None:
        for instances in self.procs.values():
            for inst in instances:
                if inst.alive():
                    if inst.frozen:
                        os.kill(inst.pid, signal.SIGCONT)  # type: ignore[arg-type]
                    inst.proc.terminate()  # type: ignore[union-attr]
        for instances in self.procs.values():
            for inst in instances:
                if inst.proc is None:
                    continue
                try:
                    inst.proc.wait(30)
                except subprocess.TimeoutExpired:
                    inst.proc.kill()
                    inst.proc.wait()

    def delete_topics(self) -> None:
        """Delete this run's topics (the broker recovers every partition after a crash)."""
        from revops.events.admin import delete_topics_with_prefix

        try:
            asyncio.run(delete_topics_with_prefix(BOOTSTRAP, self.prefix))
        except Exception as exc:
            print(f"could not delete topics {self.prefix}*: {exc}", file=sys.stderr)

    def save(self) -> None:
        state = {
            "run_id": self.run_id,
            "prefix": self.prefix,
            "without": self.without,
            "instances": {
                s: [{"port": i.port, "pid": i.pid, "log": str(i.log)} for i in insts]
                for s, insts in self.procs.items()
            },
        }
        (self.dir / "system.json").write_text(json.dumps(state, indent=2))

    # --- faults -------------------------------------------------------------------------------

    def signal(self, service: str, index: int, sig: signal.Signals) -> int:
        inst = self.procs[service][index]
        assert inst.pid is not None
        os.kill(inst.pid, sig)
        inst.frozen = sig == signal.SIGSTOP
        if sig == signal.SIGKILL:
            inst.proc.wait()  # type: ignore[union-attr]
        return inst.pid

    def kill_instance(self, inst: Instance) -> None:
        if inst.alive():
            inst.proc.kill()  # type: ignore[union-attr]
            inst.proc.wait()  # type: ignore[union-attr]

    def restart(self, service: str, index: int, ready_timeout_s: float = 120) -> float:
        """Start a (killed) instance again; returns seconds until it is ready."""
        inst = self.procs[service][index]
        self.kill_instance(inst)
        started = time.monotonic()
        self._spawn(inst)
        if not self.wait_ready(inst, ready_timeout_s):
            raise RuntimeError(f"{inst.name} not ready after restart:\n{tail(inst.log, 30)}")
        self.save()
        return time.monotonic() - started

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each part of the machine: each
        service (all its instances and workers), kafka, this load generator, everything
        else, and Postgres split by whom each backend serves
        ("postgres for router", ...: the backend's title names its client's port, and the
        client's socket names its process). Two readings' difference says where the
        cores went during a phase; processes that ended between them are not counted."""
        import psutil

        owner = {i.pid: s for s, insts in self.procs.items() for i in insts if i.pid}
        owner[self.kafka_pid() or -1] = "kafka"
        owner[os.getpid()] = "load generator"

        def part_of(proc: psutil.Process) -> str:
            with contextlib.suppress(psutil.Error):
                for p in [proc, *proc.parents()]:
                    if p.pid in owner:
                        return owner[p.pid]
            return "other"

        pg_port = int(PG.rsplit(":", 1)[1])
        client_of_port: dict[int, str] = {}
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections("tcp"):
                if conn.raddr and conn.raddr.port == pg_port and conn.pid:
                    with contextlib.suppress(psutil.Error):
                        client_of_port[conn.laddr.port] = part_of(psutil.Process(conn.pid))
        used: dict[str, float] = {}
        for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            if proc.info["name"] == "postgres":
                title = " ".join(proc.info["cmdline"] or ())
                port = title.rsplit("(", 1)[-1].split(")", 1)[0] if "(" in title else ""
                client = client_of_port.get(int(port)) if port.isdigit() else None
                part = f"postgres for {client}" if client else "postgres"
            else:
                part = part_of(proc)
            used[part] = used.get(part, 0.0) + times.user + times.system
        return used

    @staticmethod
    def kafka_pid() -> int | None:
        pidfile = ROOT / ".state" / "kafka" / "kafka.pid"
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def kafka_kill9(self) -> int:
        pid = self.kafka_pid()
        if pid is None:
            raise RuntimeError("no .state/kafka/kafka.pid: is Kafka started by make infra?")
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        return pid

    @staticmethod
    def kafka_start(timeout_s: float = 300) -> float:
        """Start the broker again; returns seconds until it answers. After a kill -9 it
        recovers every partition's unflushed segment first: with the thousands of test
        partitions this shared broker holds, that took more than kafka.sh's default 60 s."""
        started = time.monotonic()
        subprocess.run(
            [str(ROOT / "deploy/local/kafka.sh"), "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "KAFKA_READY_TIMEOUT_S": str(int(timeout_s))},
        )
        return time.monotonic() - started

    @staticmethod
    def postgres_restart() -> float:
        started = time.monotonic()
        subprocess.run(
            [str(ROOT / "deploy/local/postgres.sh"), "stop"], check=True, stdout=subprocess.DEVNULL
        )
        subprocess.run(
            [str(ROOT / "deploy/local/postgres.sh"), "start"], check=True, stdout=subprocess.DEVNULL
        )
        return time.monotonic() - started

    # --- observation --------------------------------------------------------------------------

    def topic_names(self, service: str) -> list[str]:
        import importlib

        spec = importlib.import_module(f"revops.{service}.main").SPEC
        return [t.name(self.prefix) for t in spec.topics]

    async def lag(self, service: str) -> int:
        """Sum over the group's partitions of end offset - committed offset (the same as
        `revops.events.admin.group_lag`, done here with one consumer so that a library
        module being edited cannot stop a benchmark)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP,
            group_id=f"{self.prefix}{service}",
            enable_auto_commit=False,
            request_timeout_ms=5000,
        )
        await consumer.start()
        try:
            parts = [
                TopicPartition(t, p)
                for t in self.topic_names(service)
                for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
            ]
            ends = await consumer.end_offsets(parts)
            total = 0
            for tp in parts:
                committed = await consumer.committed(tp)
                total += ends[tp] - (committed or 0)
            return total
        finally:
            await consumer.stop()

    async def lags(self) -> dict[str, int]:
        return {s: await self.lag(s) for s in self.consumers}

    async def assignment(self, service: str) -> dict[str, list[str]]:
        """Which member of the consumer group holds which partitions."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            described = await admin.describe_consumer_groups([f"{self.prefix}{service}"])
        finally:
            await admin.close()
        return _members(described)


async def _partitions(consumer: object, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # type: ignore[attr-defined]
    return consumer.partitions_for_topic(topic) or set()  # type: ignore[attr-defined]


def _members(described: object) -> dict[str, list[str]]:
    """Decode DescribeGroups' member assignments (ConsumerProtocol bytes)."""
    from aiokafka.protocol.group import MemberAssignment  # type: ignore[attr-defined]

    out: dict[str, list[str]] = {}
    for response in described:  # type: ignore[attr-defined]
        for group in response.groups:
            for member in group[-1]:
                member_id, client_id, host = member[0], member[1], member[2]
                raw = member[-1]
                parts: list[str] = []
                if raw:
                    decoded = MemberAssignment.decode(raw)
                    for topic, partitions in decoded.assignment:
                        parts += [
                            f"{topic.rsplit('-', 1)[-1] if False else topic}:{p}"
                            for p in partitions
                        ]
                out[f"{client_id}@{host}/{member_id[-6:]}"] = sorted(parts)
    return out


def snapshot(commit: str = "HEAD") -> Path:
    """Export a commit (`git archive`, nothing in the working tree changes) to
    /tmp/revops-sut-<commit> and `uv sync` it there; returns its path."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path(f"/tmp/revops-sut-{sha}")
    if not (path / ".venv" / "bin" / "revops-ingest").exists():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
        subprocess.run(
            ["uv", "sync", "--group", "bench"], cwd=path, check=True, capture_output=True
        )
    return path


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def add_reps(router_url: str) -> list[dict[str, object]]:
    """A sales team: three certified SDRs per region, and AEs paired with SDRs."""
    reps: list[dict[str, object]] = []
    for region in ("AMER", "EMEA", "APAC"):
        for n in range(3):
            reps.append(
                {
                    "id": f"005SDR{region}{n}",
                    "name": f"SDR {region} {n}",
                    "role": "SDR",
                    "region": region,
                    "certified": True,
                    "email": f"sdr{n}.{region.lower()}@example.com",
                }
            )
        for n in range(2):
            reps.append(
                {
                    "id": f"005AE{region}{n}",
                    "name": f"AE {region} {n}",
                    "role": "AE",
                    "region": region,
                    "certified": True,
                    "paired_sdr_id": f"005SDR{region}{n}",
                    "email": f"ae{n}.{region.lower()}@example.com",
                }
            )
    for rep in reps:
        r = httpx.post(f"{router_url}/reps", json=rep, headers=TOKEN, timeout=10)
        if r.status_code not in (201, 409):
            raise RuntimeError(f"POST /reps {rep['id']}: {r.status_code} {r.text[:300]}")
    # The router applies each change from the roster topic a moment after the answer: the
    # load starts once every rep is there.
    deadline = time.monotonic() + 60
    for rep in reps:
        while httpx.get(f"{router_url}/reps/{rep['id']}", headers=TOKEN, timeout=10).is_error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"rep {rep['id']} was not applied within 60 s")
            time.sleep(0.2)
    return reps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["start", "lag", "assignment", "snapshot"])
    parser.add_argument("--commit", default="HEAD", help="snapshot: the commit to export")
    parser.add_argument("--instances", type=int, default=1, help="consumer instances per service")
    parser.add_argument("--ingest", type=int, default=1, help="ingest processes")
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args()
    if args.command == "snapshot":
        print(snapshot(args.commit))
        return
    if args.command == "start":
        n = args.instances
        system = System(
            instances={"ingest": args.ingest, "router": n, "attribution": n, "renewals": n}
        )
        if args.run_id:
            system.run_id = args.run_id
        system.start()
        add_reps(system.urls("router")[0])
        print(
            json.dumps(
                {
                    "run_id": system.run_id,
                    "prefix": system.prefix,
                    "without": system.without,
                    "urls": {s: system.urls(s) for s in system.procs},
                },
                indent=2,
            )
        )
        print("started in the background; stop: kill the pids in", system.dir / "system.json")
        return
    system = System(run_id=args.run_id or "")
    state = json.loads((system.dir / "system.json").read_text())
    system.without = state["without"]
    system.procs = {s: [] for s in state["instances"]}
    if args.command == "lag":
        print(json.dumps(asyncio.run(system.lags())))
    else:
        for s in system.consumers:
            print(s, json.dumps(asyncio.run(system.assignment(s)), indent=1))


if __name__ == "__main__":
    main()
