"""Ingest under load: the real server beside a bare FastAPI endpoint, same run.

    uv sync --group bench
    uv run python bench/ingest_load.py                 # 1 worker (the default)
    uv run python bench/ingest_load.py --workers 2

Starts, one after the other, two servers with the same uvicorn settings (the services'
own `serve()`: uvloop, httptools, JSON logs at INFO, no access log, `--workers N`):
  - `bare`:   POST /webhooks/hubspot reads the body and parses the JSON, nothing else;
  - `ingest`: the real `revops-ingest` (signature v3, parsing, events, Kafka acks=all),
              on a topic prefix of its own (needs `make infra`).
and drives each with an OPEN-LOOP generator: requests are scheduled at a fixed rate and
every latency is measured from the request's scheduled time, so a slow server cannot
slow the generator down and hide its own queueing (no coordinated omission). Latencies go
into an HdrHistogram.

Phases, per server:
  1. saturation, single-event batches: offered far above capacity; the rate completed is
     the server's throughput;
  2. single-event batches at 1,000 requests/s: latency percentiles;
  3. saturation, 100-event batches: events/s;
  4. 100-event batches at a fixed rate (150 requests/s = 15,000 events/s): latency.
The resident memory of every server process is sampled during the runs (max reported),
and the server's own CPU time per answered request is read from /proc: a figure that
other work on the machine does not inflate much, unlike the rates.

The machine's cores are shared by the generator, the server and Kafka: the figures say
what this box does, not what ingest does on a host of its own.
JSON goes to bench/results/ingest_load[_wN].json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECRET = "dev-hubspot-secret"
PATH = "/webhooks/hubspot"

# --- the bare endpoint ------------------------------------------------------------------------

bare_app = FastAPI()


@bare_app.post(PATH)
async def bare_hubspot(request: Request) -> Response:
    batch = orjson.loads(await request.body())
    return Response(orjson.dumps({"accepted": len(batch)}), media_type="application/json")


@bare_app.get("/healthz")
async def bare_healthz() -> dict[str, str]:
    return {"status": "ok"}


def serve_bare(port: int, workers: int) -> None:
    from revops.events.service import serve
    from revops.ingest.settings import IngestSettings

    settings = IngestSettings(http_port=port)
    sys.path.insert(0, str(Path(__file__).parent))
    if workers > 1:
        serve(
            "ingest_load:bare_app",
            settings,
            port=port,
            workers=workers,
            access_log=False,
            timeout_worker_healthcheck=60,
        )
    else:
        serve(bare_app, settings, port=port, access_log=False)


# --- requests -----------------------------------------------------------------------------------


def notification(n: int, run: int) -> dict[str, Any]:
    kinds = ("contact.creation", "deal.propertyChange", "contact.propertyChange", "deal.creation")
    kind = kinds[n % 4]
    note: dict[str, Any] = {
        "eventId": 4_000_000_000 + n,
        "subscriptionId": 2210000 + n % 4,
        "portalId": 44556677,
        "appId": 1160452,
        "occurredAt": 1717171700000 + n,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": 51_000_000_000 + run * 10_000_000 + n,
        "changeSource": "CRM_UI",
    }
    if kind == "deal.propertyChange":
        note.update(propertyName="dealstage", propertyValue="closedwon")
    elif kind == "contact.propertyChange":
        note.update(propertyName="email", propertyValue=f"user{n}@example.com")
    return note


def signed_request(port: int, body: bytes) -> bytes:
    uri = f"http://127.0.0.1:{port}{PATH}"
    ts = str(int(time.time() * 1000))
    digest = hmac.new(SECRET.encode(), b"POST" + uri.encode() + body + ts.encode(), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-HubSpot-Signature-v3: {signature}\r\nX-HubSpot-Request-Timestamp: {ts}\r\n\r\n"
    )
    return head.encode() + body


def make_requests(port: int, count: int, batch_size: int, start: int) -> list[bytes]:
    run = int(time.time()) % 100
    requests = []
    for i in range(count):
        first = start + i * batch_size
        batch = [notification(first + j, run) for j in range(batch_size)]
        requests.append(signed_request(port, json.dumps(batch, separators=(",", ":")).encode()))
    return requests


# --- the open-loop generator -------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    offered_rps: float
    duration_s: float
    batch_size: int
    sent: int = 0
    completed: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    achieved_rps: float = 0.0
    events_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    load_average: float = 0.0  # of the machine at the end: other work shares the cores
    server_cpu_us_per_request: float = 0.0


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_phase(
    name: str,
    port: int,
    rate: float,
    duration_s: float,
    batch_size: int,
    connections: int,
    start_index: int,
    saturate: bool = False,
) -> PhaseResult:
    """Send ``rate`` requests/s for ``duration_s``. A latency phase then waits for every
    answer; a saturation phase (offered far above capacity) counts the answers received
    within the window and drops the backlog, so it measures throughput."""
    total = int(rate * duration_s)
    requests = make_requests(port, total, batch_size, start_index)
    histogram = HdrHistogram(1, 60_000_000, 3)  # microseconds
    result = PhaseResult(name, rate, duration_s, batch_size, sent=total)
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                scheduled, payload = item
                try:
                    writer.write(payload)
                    status = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    status = 599
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                latency_us = (time.perf_counter() - scheduled) * 1e6
                histogram.record_value(max(1, min(int(latency_us), 60_000_000)))
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connections open before the clock starts
    began = time.perf_counter()
    interval = 1.0 / rate
    for i, payload in enumerate(requests):
        scheduled = began + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        # Behind schedule: dispatch at once, the latency still counts from `scheduled`.
        queue.put_nowait((scheduled, payload))
    if saturate:
        await asyncio.sleep(max(0.0, began + duration_s - time.perf_counter()))
        elapsed = time.perf_counter() - began
        answered = dict(statuses)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        statuses.clear()
        statuses.update(answered)
    else:
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        elapsed = time.perf_counter() - began
    result.completed = sum(statuses.values())
    result.load_average = os.getloadavg()[0]
    result.statuses = {str(k): v for k, v in sorted(statuses.items())}
    result.errors = sum(v for k, v in statuses.items() if k != 200)
    ok = statuses.get(200, 0)
    result.achieved_rps = round(ok / elapsed, 1)
    result.events_per_s = round(ok * batch_size / elapsed, 1)
    result.latency_ms = {
        f"p{p}": round(histogram.get_value_at_percentile(p) / 1000, 2) for p in (50, 90, 99, 99.9)
    }
    result.latency_ms["max"] = round(histogram.get_max_value() / 1000, 2)
    return result


# --- the broker's own ceiling ------------------------------------------------------------------


async def kafka_ceiling(prefix: str, seconds: float) -> dict[str, float]:
    """Events/s the library's EventProducer gets acknowledged on this machine right now,
    publishing the events ingest would make, 100 per call and 64 calls at a time, with no
    HTTP and no parsing: ingest cannot exceed it."""
    from datetime import UTC, datetime

    from revops.events.producer import EventProducer
    from revops.ingest.domain.hubspot import parse_batch
    from revops.ingest.settings import IngestSettings

    producer = EventProducer(IngestSettings(topic_prefix=prefix), client_id="bench")
    await producer.start()
    now = datetime.now(UTC)
    batches = [
        parse_batch([notification(i * 100 + j, 99) for j in range(100)], received_at=now)
        for i in range(64)
    ]
    published = failed = 0
    began = time.perf_counter()
    try:
        while time.perf_counter() - began < seconds:
            results = await asyncio.gather(
                *(producer.publish(b) for b in batches), return_exceptions=True
            )
            published += 100 * sum(r is None for r in results)
            failed += 100 * sum(r is not None for r in results)
    finally:
        await producer.stop()
    elapsed = time.perf_counter() - began
    return {"events_per_s": round(published / elapsed, 1), "events_failed": failed}


# --- servers and their memory ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.extend(process_tree(int(entry.name)))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its children (the workers)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def sample_memory(
    pid: int,
    peaks: dict[int, float],
    by_phase: dict[str, float],
    phase: list[str],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        for p in process_tree(pid):
            mb = rss_mb(p)
            peaks[p] = max(peaks.get(p, 0.0), mb)
            if p != pid or len(process_tree(pid)) == 1:  # a serving process
                by_phase[phase[0]] = max(by_phase.get(phase[0], 0.0), mb)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def wait_ready(port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server on {port} not ready")


def start_server(
    kind: str, port: int, workers: int, prefix: str, log: Path
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        HTTP_PORT=str(port), HTTP_WORKERS=str(workers), TOPIC_PREFIX=prefix, LOG_LEVEL="INFO"
    )
    if kind == "ingest":
        command = [sys.executable, "-m", "revops.ingest.main"]
    else:
        command = [sys.executable, __file__, "--serve-bare", str(port), "--workers", str(workers)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


async def bench_server(kind: str, args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    port = free_port()
    log = RESULTS / f"ingest_load_{kind}.log.tmp"
    process = start_server(kind, port, args.workers, prefix, log)
    peaks: dict[int, float] = {}
    by_phase: dict[str, float] = {}
    phase = ["idle"]
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(wait_ready, port)
        sampler = asyncio.create_task(sample_memory(process.pid, peaks, by_phase, phase, stop))
        phases = []
        index = 0
        plan = [
            ("single_saturation", args.saturation_rps, args.seconds, 1, True),
            ("single_at_1000rps", 1000.0, args.seconds, 1, False),
            ("batch100_saturation", args.batch_saturation_rps, args.seconds, 100, True),
            ("batch100_at_150rps", 150.0, args.seconds, 100, False),
        ]
        for name, rate, seconds, size, saturate in plan:
            await asyncio.sleep(2)  # let the previous phase's backlog drain
            phase[0] = name
            cpu_before = cpu_seconds(process.pid)
            result = await run_phase(
                name,
                port,
                rate,
                seconds,
                size,
                args.connections,
                start_index=index,
                saturate=saturate,
            )
            # The server's own CPU per answered request: what it costs, whatever else
            # runs on the machine (saturation phases also count dropped backlog).
            answered = sum(result.statuses.values())  # a 503 costs its parsing too
            spent = cpu_seconds(process.pid) - cpu_before
            result.server_cpu_us_per_request = round(spent / answered * 1e6, 1) if answered else 0.0
            index += int(rate * seconds) * size
            phases.append(result.__dict__)
            print(
                f"{kind:>6} {name:<20} offered {rate:>7.0f}/s  ok {result.achieved_rps:>8.1f} req/s"
                f"  {result.events_per_s:>9.1f} ev/s  p50 {result.latency_ms['p50']:>8.2f} ms"
                f"  p99 {result.latency_ms['p99']:>8.2f} ms  errors {result.errors}"
                f"  load {result.load_average:.1f}"
                f"  server cpu {result.server_cpu_us_per_request:.0f} us/req",
                flush=True,
            )
        stop.set()
        await sampler
    finally:
        stop.set()
        stop_server(process)
    # The uvicorn supervisor (workers > 1) holds no app; report the serving processes.
    serving = {p: mb for p, mb in peaks.items() if p != process.pid or args.workers == 1}
    return {
        "server": kind,
        "workers": args.workers,
        "phases": phases,
        "rss_mb_per_process": {str(p): round(mb, 1) for p, mb in sorted(serving.items())},
        "rss_mb_max_worker": round(max(serving.values(), default=0.0), 1),
        "rss_mb_max_worker_by_phase": {k: round(v, 1) for k, v in by_phase.items()},
    }


async def main(args: argparse.Namespace) -> None:
    import uvloop  # noqa: F401  (the generator's own loop is uvloop too, see __main__)

    from revops.events.settings import KafkaSettings
    from revops.events.testing import create_topics, require_infrastructure

    require_infrastructure()
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    await create_topics(KafkaSettings(topic_prefix=prefix))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "connections": args.connections,
        "seconds_per_phase": args.seconds,
        "note": "generator, server and Kafka share the machine's cores",
        "servers": {},
    }
    report["kafka_ceiling"] = await kafka_ceiling(prefix, args.seconds)
    print(f"kafka ceiling (EventProducer alone): {report['kafka_ceiling']}", flush=True)
    for kind in ("bare", "ingest"):
        report["servers"][kind] = await bench_server(kind, args, prefix)
    bare = report["servers"]["bare"]["phases"][0]["achieved_rps"]
    ingest = report["servers"]["ingest"]["phases"]
    report["summary"] = {
        "single_rps_ingest": ingest[0]["achieved_rps"],
        "single_rps_bare": bare,
        "ingest_over_bare": round(ingest[0]["achieved_rps"] / bare, 3) if bare else None,
        "p50_ms_at_1000rps": ingest[1]["latency_ms"]["p50"],
        "p99_ms_at_1000rps": ingest[1]["latency_ms"]["p99"],
        "errors_at_1000rps": ingest[1]["errors"],
        "batch100_events_per_s": ingest[2]["events_per_s"],
        "kafka_ceiling_events_per_s": report["kafka_ceiling"]["events_per_s"],
        "batch100_at_15000_events_per_s_p99_ms": ingest[3]["latency_ms"]["p99"],
        "server_cpu_us_per_request": {
            kind: {p["name"]: p["server_cpu_us_per_request"] for p in server["phases"]}
            for kind, server in report["servers"].items()
        },
        "rss_mb_max_worker": report["servers"]["ingest"]["rss_mb_max_worker"],
        "rss_mb_by_phase": report["servers"]["ingest"]["rss_mb_max_worker_by_phase"],
        "goals": {
            "single_rps >= 2000": ingest[0]["achieved_rps"] >= 2000,
            "single >= 50% of bare": bool(bare) and ingest[0]["achieved_rps"] >= 0.5 * bare,
            "p50 <= 5 ms at 1000/s": ingest[1]["latency_ms"]["p50"] <= 5,
            "p99 <= 25 ms at 1000/s": ingest[1]["latency_ms"]["p99"] <= 25,
            "batch100 >= 15000 events/s": ingest[2]["events_per_s"] >= 15000,
            "rss < 150 MB per worker": report["servers"]["ingest"]["rss_mb_max_worker"] < 150,
        },
    }
    name = "ingest_load.json" if args.workers == 1 else f"ingest_load_w{args.workers}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))
    print(f"written to bench/results/{name}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--saturation-rps", type=float, default=6000)
    parser.add_argument("--batch-saturation-rps", type=float, default=400)
    parser.add_argument("--serve-bare", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_bare:
        serve_bare(arguments.serve_bare, arguments.workers)
    else:
        import uvloop

        uvloop.run(main(arguments))
