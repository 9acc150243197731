"""The whole system as processes for the console's tests, and a poll with a deadline."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

BIN = Path(sys.executable).parent
SERVICES = ("ingest", "router", "attribution", "renewals", "console")
ADMIN = {"Authorization": "Bearer dev-admin-token"}

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(check: Callable[[], T], *, timeout_s: float = 30, what: str = "condition") -> T:
    """``check``'s value once it stops raising AssertionError or an HTTP error; a
    deadline, never a fixed wait."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except (AssertionError, httpx.HTTPError) as exc:
            if time.monotonic() > deadline:
                last = f"{exc.__class__.__name__}: {exc}"[:500]
                raise AssertionError(f"{what}: not within {timeout_s:.0f}s ({last})") from None
        time.sleep(0.2)


@dataclass
class System:
    urls: dict[str, str]
    prefix: str
    demo_output: str = ""
    open_deals: list[str] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)

    @property
    def console(self) -> str:
        return self.urls["console"]

    def api(self, service: str, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.urls[service]}{path}", params=params, headers=ADMIN, timeout=10
        )
        response.raise_for_status()
        return response.json()


class Processes:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("wb+")
        command = [str(BIN / f"revops-{name}")]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        self.running[name] = (process, log)

    def tail(self, name: str) -> str:
        _, log = self.running[name]
        log.flush()
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_ready(self, name: str, url: str, timeout_s: float = 120) -> None:
        process, _ = self.running[name]

        def ready() -> None:
            assert process.poll() is None, f"{name} exited: {self.tail(name)}"
            assert httpx.get(f"{url}/readyz", timeout=2).status_code == 200

        poll(ready, timeout_s=timeout_s, what=f"{name} ready ({self.logs / name}.log)")

    def stop(self, name: str) -> None:
        process, log = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)
