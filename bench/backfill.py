"""Backfill throughput and memory: Salesforce accounts and contacts from the fake CRM
(its own process, records generated on the fly, never stored) to Kafka, as
``revops backfill salesforce --objects accounts,contacts`` does it.

    uv run python bench/backfill.py --accounts 100000 --contacts-per-account 3 --api rest,bulk

Each of ``--api`` (REST query pages, Bulk API 2.0 query jobs) in turn against the same
fake org: the wall time, records and events per second, and the backfill process's
resident memory sampled every second (peak, and at each tenth of the run: flat means
streamed, not loaded whole). Publishes under a unique topic prefix, deleted afterwards.
JSON goes to bench/results/backfill.json. Needs `make infra`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import SecretStr

from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, delete_topics, unique_prefix
from revops.ingest.backfill.command import BackfillSettings, backfill

RESULTS = Path(__file__).parent / "results" / "backfill.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_up(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await client.post(f"{url}/services/oauth2/token", data={})
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def sample_rss(samples: list[tuple[float, int]], started: float) -> None:
    me = psutil.Process()
    while True:
        samples.append((time.monotonic() - started, me.memory_info().rss))
        await asyncio.sleep(1)


async def one_run(url: str, api: str) -> dict[str, Any]:
    """One backfill of accounts and contacts through ``api`` (rest or bulk), into topics
    of its own."""
    kafka = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(kafka)
    try:
        settings = BackfillSettings(
            topic_prefix=kafka.topic_prefix,
            salesforce_login_url=url,
            salesforce_client_id="fake-consumer-key",
            salesforce_client_secret=SecretStr("fake-consumer-secret"),
            backfill_state_file=Path(tempfile.mkdtemp()) / "checkpoints.json",
            backfill_salesforce_api=api,
        )
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        sampler = asyncio.create_task(sample_rss(samples, started))
        summary = await backfill("salesforce", settings, objects=["accounts", "contacts"])
        elapsed = time.monotonic() - started
        sampler.cancel()
        samples.append((elapsed, psutil.Process().memory_info().rss))
    finally:
        await delete_topics(kafka)
    read = sum(u.read for u in summary.units)
    tenths = [samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(11)]
    return {
        "api": api,
        "complete": summary.complete,
        "bad": summary.bad,
        "records": read,
        "events_published": sum(u.published for u in summary.units),
        "seconds": round(elapsed, 1),
        "records_per_s": round(read / elapsed),
        "peak_rss_mb": round(max(rss for _, rss in samples) / 2**20, 1),
        "rss_mb_by_tenth": [round(rss / 2**20, 1) for _, rss in tenths],
        "load_average_after": os.getloadavg(),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    fake = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "revops.ingest.backfill.fake_crm",
        str(port),
        str(args.accounts),
        str(args.contacts_per_account),
    )
    runs = []
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_up(url)
        load_before = os.getloadavg()
        for api in args.api.split(","):
            runs.append(await one_run(url, api.strip()))
    finally:
        fake.terminate()
        await fake.wait()
    return {
        "accounts": args.accounts,
        "contacts": args.accounts * args.contacts_per_account,
        "load_average_before": load_before,
        "runs": runs,
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--contacts-per-account", type=int, default=3)
    parser.add_argument(
        "--api",
        default="rest,bulk",
        help="comma-separated, run one after the other: rest (query pages), bulk (Bulk API "
        "2.0 query jobs)",
    )
    result = asyncio.run(main(parser.parse_args()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
