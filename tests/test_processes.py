"""Each service starts with one command (`revops-<svc>`: API and consumer in one process)
and stops gracefully on SIGTERM: the batch in flight commits, the consumer leaves its
group, the application's shutdown runs to its end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from revops.events.settings import KafkaSettings
from revops.events.testing import database_url_for_tests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("service", ["ingest", "router", "attribution", "renewals"])
async def test_a_service_starts_with_one_command_and_stops_cleanly_on_sigterm(
    service, kafka_settings: KafkaSettings, tmp_path
):
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "TOPIC_PREFIX": kafka_settings.topic_prefix,
        "DATABASE_URL": database_url_for_tests(service),
    }
    log = (tmp_path / f"{service}.log").open("w+")
    command = [str(BIN / f"revops-{service}")]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)  # noqa: ASYNC220
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                assert process.poll() is None, f"{service} exited: {_tail(log)}"
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{service} not ready: {_tail(log)}"
                await asyncio.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        # uvicorn shuts down, then re-raises the signal: "ended by SIGTERM", as a
        # supervisor expects. What matters is that the shutdown ran to its end first.
        assert code in (0, -signal.SIGTERM), _tail(log)
        assert time.monotonic() - started < 25
        output = _tail(log, 300)
        assert '"message": "Application shutdown complete."' in output
        if service != "ingest":
            assert '"message": "consumer stopped"' in output
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


def _tail(log, lines: int = 30) -> str:
    log.flush()
    log.seek(0)
    return "".join(log.readlines()[-lines:])
