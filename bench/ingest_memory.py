"""Ingest's resident memory under the batch load, and what holds it (tracemalloc).

    uv sync --group bench
    uv run python bench/ingest_memory.py                  # RSS of the worker
    uv run python bench/ingest_memory.py --tracemalloc    # and the top allocation sites
    uv run python bench/ingest_memory.py --workers 2      # as the service runs by default

Starts the real `revops-ingest` (one worker by default, as bench/ingest_load.py, whose
figure it is) on a topic prefix of its own (needs `make infra`) and drives it with the
batch phases of bench/ingest_load.py over 64 connections: 100-event HubSpot batches,
first offered far above capacity, then at 150 requests/s (15,000 events/s). Every
serving process's resident size is sampled every 0.2 s; the figure is the largest. With
``--tracemalloc`` each worker traces its allocations from the start of the load (slower, so its
RSS figure is not the one to quote; only the saturation phase) and, at the end of it
(SIGUSR1, every connection still waiting for an answer), writes the sites that hold the
most memory and the peak of traced memory.
Tracing keeps its own bookkeeping outside the traced memory, so a site's share of the
traced total is what to read.
JSON goes to bench/results/ingest_memory.json.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_load import (
    RESULTS,
    free_port,
    process_tree,
    rss_mb,
    run_phase,
    stop_server,
    wait_ready,
)

# Run inside each worker (uvicorn imports the app factory in every worker process): on
# SIGUSR2 it starts tracing (once the app is up: tracing the imports slows start-up past
# the readiness wait on a busy machine); on SIGUSR1, the traced memory's top sites go to
# $INGEST_TRACEMALLOC_DIR/<pid>-<n>.json.
TRACER = """
import json, os, signal, tracemalloc
from pathlib import Path

_taken = 0

def _dump(signum, frame):
    global _taken
    _taken += 1
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    top = snapshot.statistics("traceback")[:25]
    by_file = snapshot.statistics("filename")[:15]
    out = {
        "pid": os.getpid(),
        "traced_mb": round(current / 2**20, 1),
        "traced_peak_mb": round(peak / 2**20, 1),
        "top": [
            {"mb": round(s.size / 2**20, 2), "blocks": s.count,
             "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-6:]}
            for s in top
        ],
        "by_file": [
            {"mb": round(s.size / 2**20, 2), "file": s.traceback[0].filename} for s in by_file
        ],
    }
    path = Path(os.environ["INGEST_TRACEMALLOC_DIR"]) / f"{os.getpid()}-{_taken}.json"
    path.write_text(json.dumps(out, indent=1))

def _start(signum, frame):
    tracemalloc.start(3)

if os.environ.get("INGEST_TRACEMALLOC_DIR"):
    signal.signal(signal.SIGUSR2, _start)
    signal.signal(signal.SIGUSR1, _dump)
"""


def start_ingest(
    port: int, workers: int, prefix: str, trace_dir: Path | None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        HTTP_PORT=str(port), HTTP_WORKERS=str(workers), TOPIC_PREFIX=prefix, LOG_LEVEL="INFO"
    )
    command = [sys.executable]
    if trace_dir is not None:
        # Each worker is a fresh interpreter: the tracer comes in through sitecustomize.
        site = trace_dir / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(TRACER)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
        env["INGEST_TRACEMALLOC_DIR"] = str(trace_dir)
    command += ["-m", "revops.ingest.main"]
    log = (RESULTS / "ingest_memory.log.tmp").open("wb")
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
    )


def workers_of(pid: int, workers: int) -> list[int]:
    tree = process_tree(pid)
    return tree if workers == 1 else [p for p in tree if p != pid]


async def sample(
    pid: int, workers: int, peaks: dict[str, float], phase: list[str], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for p in workers_of(pid, workers):
            key = f"{phase[0]}"
            peaks[key] = max(peaks.get(key, 0.0), rss_mb(p))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


def tell_workers(pid: int, workers: int, signum: int = signal.SIGUSR1) -> None:
    for p in workers_of(pid, workers):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signum)


async def main(args: argparse.Namespace) -> None:
    from revops.events.settings import KafkaSettings
    from revops.events.testing import create_topics, delete_topics, require_infrastructure

    require_infrastructure()
    prefix = f"benchmem{uuid.uuid4().hex[:8]}-"
    settings = KafkaSettings(topic_prefix=prefix)
    await create_topics(settings)
    RESULTS.mkdir(parents=True, exist_ok=True)
    trace_dir = RESULTS / f"ingest_memory_trace_{prefix.rstrip('-')}" if args.tracemalloc else None
    port = free_port()
    process = start_ingest(port, args.workers, prefix, trace_dir)
    peaks: dict[str, float] = {}
    phase = ["idle"]
    stop = asyncio.Event()
    phases: list[dict[str, Any]] = []
    try:
        await asyncio.to_thread(wait_ready, port)
        if trace_dir is not None:
            tell_workers(process.pid, args.workers, signal.SIGUSR2)  # trace from now on
        sampler = asyncio.create_task(sample(process.pid, args.workers, peaks, phase, stop))
        await asyncio.sleep(2)
        index = 0
        plan = [("batch100_saturation", args.batch_saturation_rps, True)]
        if trace_dir is None:  # traced, a worker is too slow to answer 150 batches/s
            plan.append(("batch100_at_150rps", 150.0, False))
        for name, rate, saturate in plan:
            phase[0] = name
            result = await run_phase(
                name, port, rate, args.seconds, 100, args.connections, index, saturate=saturate
            )
            index += int(rate * args.seconds) * 100
            phases.append(
                {"name": name, "events_per_s": result.events_per_s, "errors": result.errors}
            )
            print(f"{name}: {result.events_per_s:.0f} events/s, errors {result.errors}", flush=True)
            if trace_dir is not None:
                tell_workers(process.pid, args.workers)
        phase[0] = "after"
        await asyncio.sleep(3)
        stop.set()
        await sampler
    finally:
        stop.set()
        stop_server(process)
        await delete_topics(settings)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workers": args.workers,
        "tracemalloc": args.tracemalloc,
        "load_average": os.getloadavg(),
        "phases": phases,
        "rss_mb_max_worker_by_phase": {k: round(v, 1) for k, v in peaks.items()},
        "rss_mb_max_worker": round(max(peaks.values(), default=0.0), 1),
    }
    if trace_dir is not None:
        report["traces"] = [json.loads(p.read_text()) for p in sorted(trace_dir.glob("*.json"))]
    (RESULTS / "ingest_memory.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "traces"}, indent=1))
    for trace in report.get("traces", []):
        print(
            f"worker {trace['pid']}: traced {trace['traced_mb']} MB,"
            f" peak {trace['traced_peak_mb']} MB"
        )
        for site in trace["top"][:8]:
            print(f"  {site['mb']:7.2f} MB {site['blocks']:>7} blocks  {site['where'][-1]}")
    print("written to bench/results/ingest_memory.json")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch-saturation-rps", type=float, default=400)
    parser.add_argument("--tracemalloc", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse_args()))
