"""Ingest's several workers answer one consistent total at /metrics: each worker counts
into the directory they share (prometheus-client's multiprocess mode), so whichever
worker a scrape reaches, it answers the sum of all of them. Without it consecutive
scrapes alternate between the workers' own totals."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from revops.events import metrics
from revops.events.settings import KafkaSettings
from tests.test_processes import _tail, free_port

BIN = Path(sys.executable).parent
SCRAPES = 20


def refused_signups(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "revops_ingest_requests_total" and sample.labels == {
                "source": "product",
                "status": "401",
            }:
                return sample.value
    return 0.0


async def test_every_scrape_of_two_workers_answers_the_sum_of_both(
    kafka_settings: KafkaSettings, tmp_path: Path
):
    shared = tmp_path / "metrics"
    shared.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "HTTP_WORKERS": "2",
        "TOPIC_PREFIX": kafka_settings.topic_prefix,
        # Given here so the test can see which workers wrote; left out, ingest makes one.
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    log = (tmp_path / "ingest.log").open("w+")
    process = subprocess.Popen([str(BIN / "revops-ingest")], env=env, stdout=log, stderr=log)  # noqa: ASYNC220
    url = f"http://127.0.0.1:{port}"
    try:
        await _until_ready(process, url, log)
        # Unsigned sign-ups (refused with 401, counted, nothing published) until both
        # workers have answered some: a new connection each time, which the kernel hands
        # to either worker.
        refused = 0
        deadline = time.monotonic() + 60
        while len(_workers_that_counted(shared)) < 2 or refused < 20:
            assert time.monotonic() < deadline, f"one worker answered all: {_tail(log)}"
            async with httpx.AsyncClient(base_url=url) as client:
                answer = await client.post(
                    "/webhooks/product/signups",
                    content=b"{}",
                    headers={"content-type": "application/json"},
                )
            assert answer.status_code == 401
            refused += 1
        totals = []
        for _ in range(SCRAPES):
            async with httpx.AsyncClient(base_url=url) as client:
                totals.append(refused_signups((await client.get("/metrics")).text))
        assert totals == [refused] * SCRAPES
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        log.close()


def _workers_that_counted(shared: Path) -> set[str]:
    """The processes whose own file holds a refused sign-up."""
    return {
        path.stem.split("_")[-1]
        for path in shared.glob("counter_*.db")
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        if "revops_ingest_requests_total" in key and value > 0
    }


async def _until_ready(process: subprocess.Popen[bytes], url: str, log) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            assert process.poll() is None, f"ingest exited: {_tail(log)}"
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"ingest not ready: {_tail(log)}"
            await asyncio.sleep(0.3)


def test_workers_started_without_a_directory_share_a_fresh_one_removed_afterwards(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics.shared_by_workers():
        directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.is_dir() and not any(directory.iterdir())
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert not directory.exists()
