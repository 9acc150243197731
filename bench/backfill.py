"""Backfill throughput and memory: Salesforce accounts and contacts from the fake CRM
(its own process, records generated on the fly, never stored) to Kafka, as
``revops backfill salesforce --objects accounts,contacts`` does it.

    uv run python bench/backfill.py --accounts 100000 --contacts-per-account 3

Reports the wall time, records and events per second, and the backfill process's
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
    kafka = KafkaSettings(topic_prefix=unique_prefix())
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_up(url)
        await create_topics(kafka)
        settings = BackfillSettings(
            topic_prefix=kafka.topic_prefix,
            salesforce_login_url=url,
            salesforce_client_id="fake-consumer-key",
            salesforce_client_secret=SecretStr("fake-consumer-secret"),
            backfill_state_file=Path(tempfile.mkdtemp()) / "checkpoints.json",
        )
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        sampler = asyncio.create_task(sample_rss(samples, started))
        summary = await backfill("salesforce", settings, objects=["accounts", "contacts"])
        elapsed = time.monotonic() - started
        sampler.cancel()
        samples.append((elapsed, psutil.Process().memory_info().rss))
    finally:
        fake.terminate()
        await fake.wait()
        await delete_topics(kafka)
    read = sum(u.read for u in summary.units)
    events = sum(u.published for u in summary.units)
    tenths = [samples[min(len(samples) - 1, len(samples) * k // 10)] for k in range(11)]
    return {
        "accounts": args.accounts,
        "contacts": args.accounts * args.contacts_per_account,
        "complete": summary.complete,
        "bad": summary.bad,
        "records": read,
        "events_published": events,
        "seconds": round(elapsed, 1),
        "records_per_s": round(read / elapsed),
        "peak_rss_mb": round(max(rss for _, rss in samples) / 2**20, 1),
        "rss_mb_by_tenth": [round(rss / 2**20, 1) for _, rss in tenths],
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--contacts-per-account", type=int, default=3)
    result = asyncio.run(main(parser.parse_args()))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
