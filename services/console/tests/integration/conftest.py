"""The console's tests run against the whole system as processes: the four services
(each its real consumer, its schema in the test database, on a topic prefix of the
module's own) and the console on free ports, then the demo's data and a few weeks of
forecast."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest

from revops.attribution.main import SPEC as ATTRIBUTION_SPEC
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    create_topics,
    database_url_for_tests,
    fresh_schema,
    unique_prefix,
)
from revops.renewals.main import SPEC as RENEWALS_SPEC
from revops.router.main import SPEC as ROUTER_SPEC

from . import console_seed as seed
from .console_system import (
    SERVICES,
    Processes,
    System,
    free_port,
    poll,
)

CONSUMERS = {"router": ROUTER_SPEC, "attribution": ATTRIBUTION_SPEC, "renewals": RENEWALS_SPEC}


def run_apart(work: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine in a thread of its own: this thread may have a loop running
    (Playwright's sync API keeps one)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def system(infra: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    prefix = unique_prefix()
    run_apart(create_topics(KafkaSettings(topic_prefix=prefix)))
    for name, spec in CONSUMERS.items():
        run_apart(fresh_schema(spec, database_url_for_tests(name)))
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes = Processes(tmp_path_factory.mktemp("console-system"))
    base = {**os.environ, "TOPIC_PREFIX": prefix, "LOG_LEVEL": "WARNING"}
    try:
        for name in SERVICES:
            env = {**base, "HTTP_PORT": str(ports[name])}
            if name in CONSUMERS:
                env["DATABASE_URL"] = database_url_for_tests(name)
            if name == "ingest":
                env["HTTP_WORKERS"] = "1"
            if name == "renewals":
                env["SCHEDULER_ENABLED"] = "false"  # the tests' snapshots only
            if name == "console":
                env.update({f"{s.upper()}_URL": urls[s] for s in SERVICES if s != "console"})
            processes.start(name, env)
        for name in SERVICES:
            processes.wait_ready(name, urls[name])
        system = System(urls=urls, prefix=prefix)
        system.demo_output = seed.run_demo(urls)
        system.open_deals = seed.send_open_deals(urls["ingest"], seed.now())
        for deal in system.open_deals:
            poll(
                partial(_at_proposal, system, deal),
                timeout_s=60,
                what=f"renewals applied {deal}",
            )
        poll(
            lambda: _sized(system, len(system.open_deals)),
            timeout_s=60,
            what="renewals applied the open deals' account sizes",
        )
        # The attribution page charts the open deals: attribution applies them on its own
        # time, so the pages are looked at once it has.
        poll(
            lambda: _attributed(system, len(system.open_deals)),
            timeout_s=60,
            what="attribution applied the open deals",
        )
        system.snapshots = seed.take_snapshots(urls["renewals"], seed.now())
        yield system
    finally:
        processes.stop_all()


def _attributed(system: System, deals: int) -> None:
    report = system.api("attribution", "/reports/pipeline-by-source")
    assert report["opportunities"] >= deals, report


def _sized(system: System, accounts: int) -> None:
    listed = system.api("renewals", "/accounts")
    assert listed["total"] >= accounts, listed


def _at_proposal(system: System, deal: str) -> None:
    opportunity = system.api("renewals", f"/opportunities/{deal}")
    assert opportunity["stage"] == "3 - Proposal", opportunity
