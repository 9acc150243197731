"""docker-compose.yml, really run under a container engine.

Builds every image, starts the whole stack on free host ports (never the 9092 and 5432
of `make infra`), waits for every health check, sends the demo's signed webhooks to the
containerised ingest and reads what the other services made of them, kills a consumer's
process and checks that its container comes back and loses no event, then `down -v`.
Before that, the suite's own testcontainers path (the root conftest) runs once on the
same images: a pytest of its own starts Kafka and Postgres in containers and runs real
tests against them.

The engine: `deploy/compose/engine.sh up` (the machine's Docker or podman when one
answers, else Debian's podman, installed and served on a socket of this checkout). The
images: built from Debian's packages by `deploy/compose/base-images.sh` (no registry
needed), or the official ones with REVOPS_COMPOSE_IMAGES=official. Where no engine can
be had, the test fails and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from revops.events.senders import hubspot_v3_headers

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
ENGINE = ROOT / "deploy" / "compose" / "engine.sh"
BASE_IMAGES = ROOT / "deploy" / "compose" / "base-images.sh"
DEMO = ROOT / "deploy" / "local" / "demo.py"
SERVICES = ("ingest", "router", "attribution", "renewals", "console")
CONSUMERS = ("router", "attribution", "renewals")
HEALTH_CHECKED = ("kafka", "postgres", *SERVICES)
LOCAL_IMAGES = {
    "PYTHON_IMAGE": "revops-python:3.11",
    "KAFKA_IMAGE": "revops-kafka:3.9.2",
    "POSTGRES_IMAGE": "revops-postgres:15",
}
# Cold: base images from Debian's mirror, five service builds from PyPI. Warm: seconds.
# Containers are processes too: `make unit` leaves these tests out.
pytestmark = [pytest.mark.timeout(3600), pytest.mark.processes]
# Run by the testcontainers check: an event published and consumed once through the
# inbox, and every service's migrations against the models.
ON_TESTCONTAINERS = (
    "libs/events/tests/test_runner.py::test_an_event_delivered_twice_is_applied_once",
    "tests/test_migrations.py::test_the_migrations_build_what_the_models_describe",
)
NOWHERE = "127.0.0.1:9"

T = TypeVar("T")


def poll(what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 1) -> T:
    """Call ``probe`` until it returns something other than None; fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            found = probe()
        except (httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
            found, last = None, exc
        if found is not None:
            return found
        time.sleep(every_s)
    pytest.fail(f"{what}: not within {timeout_s:.0f}s (last error: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(
    command: list[str], env: dict[str, str], timeout_s: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def engine_env() -> dict[str, str]:
    """The environment with DOCKER_HOST set to an engine that answers (started if need be)."""
    up = run(["bash", str(ENGINE), "up"], dict(os.environ), timeout_s=900)
    if up.returncode != 0:
        pytest.fail(
            "no container engine for the compose test: deploy/compose/engine.sh up said:\n"
            f"{up.stdout}{up.stderr}\nStart Docker or podman (and set DOCKER_HOST), or run "
            "the tests as root on Debian so the script can install podman.",
            pytrace=False,
        )
    found = run(["bash", str(ENGINE), "env"], dict(os.environ))
    assert found.returncode == 0, found.stderr
    host = found.stdout.strip().removeprefix("export DOCKER_HOST=")
    return {**os.environ, "DOCKER_HOST": host}


def compose_command(env: dict[str, str]) -> list[str]:
    if run(["docker", "compose", "version"], env).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no Compose: apt-get install -y docker-compose (deploy/compose/engine.sh up does)")


def image_variables(env: dict[str, str]) -> dict[str, str]:
    """The local images, built (or found up to date) now; none with official images."""
    if os.environ.get("REVOPS_COMPOSE_IMAGES", "local") == "official":
        return {}
    command = ["bash", str(BASE_IMAGES)]
    # The machine's trust store goes into the images: where it holds a TLS-inspecting
    # proxy's CA, pip inside the service builds needs it to reach PyPI.
    bundle = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
    if bundle.is_file():
        command += ["--ca-bundle", str(bundle)]
    built = run(command, env, timeout_s=1800)
    assert built.returncode == 0, f"base-images.sh failed:\n{built.stdout}{built.stderr}"
    return LOCAL_IMAGES


def test_the_suite_starts_kafka_and_postgres_with_testcontainers_on_these_images() -> None:
    """The root conftest's testcontainers path, forced on (REVOPS_TESTCONTAINERS=on) with
    the images this run uses (the local ones unless REVOPS_COMPOSE_IMAGES=official): a
    pytest of its own starts Kafka and Postgres in containers, runs real tests against
    them and removes both. This machine's Kafka and Postgres are pointed at a port where
    nothing listens, so a test that reached them instead of the containers would fail."""
    env = engine_env()
    images = image_variables(env)
    chosen = {k: v for k, v in images.items() if k in ("KAFKA_IMAGE", "POSTGRES_IMAGE")}
    env = {
        **env,
        **chosen,
        "REVOPS_TESTCONTAINERS": "on",
        "KAFKA_BOOTSTRAP_SERVERS": NOWHERE,
        **{
            f"TEST_{role}_DATABASE_URL": f"postgresql+asyncpg://nobody@{NOWHERE}/none"
            for role in ("REVOPS", "ROUTER", "ATTRIBUTION", "RENEWALS", "REPORTING")
        },
        # Ryuk, testcontainers' reaper, is an image of its own from a registry; the
        # conftest removes its containers itself when the session ends.
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        # The engine runs on this machine and publishes ports on localhost. Where
        # /.dockerenv exists (CI machines are often containers) testcontainers would
        # guess a gateway address instead, from fields podman's API does not have.
        "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    }
    before = set(suite_containers(env))
    try:
        result = run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *ON_TESTCONTAINERS],
            env,
            timeout_s=900,
        )
        output = f"{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, output
        started = re.search(
            r"in containers \(testcontainers\): (\S+) \((\S+)\) at \S+, (\S+) \((\S+)\) at",
            result.stdout,
        )
        assert started, f"the session did not say it started containers:\n{output}"
        kafka, kafka_image, postgres, postgres_image = started.groups()
        assert kafka_image == chosen.get("KAFKA_IMAGE", "apache/kafka:3.9.2")
        assert postgres_image == chosen.get("POSTGRES_IMAGE", "postgres:15")
        summary = result.stdout.strip().splitlines()[-1]
        assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, summary
        left = set(suite_containers(env)) - before
        assert not {kafka, postgres} & left, f"the session left {left} behind"
    finally:
        for name in set(suite_containers(env)) - before:
            run(["docker", "rm", "-f", "-v", name], env, timeout_s=120)


def suite_containers(env: dict[str, str]) -> list[str]:
    """The names of the containers the suite's testcontainers path starts."""
    listed = run(
        ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=revops-tests-"],
        env,
        timeout_s=60,
    )
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


@dataclass
class Stack:
    compose: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    secrets: dict[str, str]
    timings: dict[str, float]

    def __call__(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, *args], self.env, timeout_s)

    def docker(self, *args: str) -> str:
        result = run(["docker", *args], self.env, timeout_s=60)
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def container(self, service: str) -> str:
        result = self("ps", "-q", service, timeout_s=60)
        assert result.returncode == 0 and result.stdout.strip(), f"no {service}: {result.stderr}"
        return result.stdout.strip().splitlines()[0]

    def health(self, service: str) -> str:
        return self.docker("inspect", "-f", "{{.State.Health.Status}}", self.container(service))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "40", timeout_s=60).stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    env = engine_env()
    compose = compose_command(env)
    timings["engine"] = time.monotonic() - started
    mark = time.monotonic()
    images = image_variables(env)
    timings["base images"] = time.monotonic() - mark

    ports = {name: free_port() for name in ("kafka", "postgres", *SERVICES)}
    secrets = {
        "API_TOKEN": uuid.uuid4().hex,
        "API_READ_TOKEN": uuid.uuid4().hex,
        "HUBSPOT_CLIENT_SECRETS": json.dumps([uuid.uuid4().hex]),
        "SALESFORCE_EVENTS_SECRETS": json.dumps([uuid.uuid4().hex]),
        "PRODUCT_WEBHOOK_SECRETS": '["whsec_' + "dGVzdC1zZWNyZXQtb2YtdGhlLWNvbXBvc2UtcnVu" + '"]',
        **{f"{role.upper()}_DB_PASSWORD": uuid.uuid4().hex for role in CONSUMERS},
    }
    values = {**secrets, **images}
    values.update({f"{name.upper()}_HOST_PORT": str(port) for name, port in ports.items()})
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    project = f"revops-test-{uuid.uuid4().hex[:8]}"
    compose = [*compose, "-p", project, "--env-file", str(env_file), "-f", str(COMPOSE_FILE)]
    stack = Stack(compose, env, ports, secrets, timings)
    try:
        mark = time.monotonic()
        built = stack("build", timeout_s=1800)
        assert built.returncode == 0, f"compose build failed:\n{built.stdout}{built.stderr}"
        timings["build"] = time.monotonic() - mark
        mark = time.monotonic()
        up = stack("up", "-d", timeout_s=900)
        assert up.returncode == 0, f"compose up failed:\n{up.stderr}\n{stack.logs()}"
        for name in HEALTH_CHECKED:
            poll(
                f"{name} healthy",
                lambda n=name: True if stack.health(n) == "healthy" else None,  # type: ignore[misc]
                timeout_s=300,
            )
        timings["up until healthy"] = time.monotonic() - mark
        yield stack
    finally:
        mark = time.monotonic()
        stack("down", "-v", "--remove-orphans", timeout_s=300)
        timings["down -v"] = time.monotonic() - mark
        timings["total"] = time.monotonic() - started
        print("\ncompose run timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))


def test_every_service_is_healthy_and_published_on_its_host_port(stack: Stack) -> None:
    for name in SERVICES:
        response = httpx.get(f"{stack.url(name)}/healthz", timeout=5)
        assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"


def test_the_demo_runs_against_the_containers(stack: Stack) -> None:
    """The demo's signed webhooks into the containerised ingest; it reads back, with
    deadlines, what router, attribution and renewals made of them, and exits 1 on any
    step that did not work."""
    env = {
        **stack.env,
        **stack.secrets,
        **{f"{name.upper()}_URL": stack.url(name) for name in SERVICES},
    }
    result = run([sys.executable, str(DEMO)], env, timeout_s=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{stack.logs()}"
    assert "All four services answered." in result.stdout


def send_form(stack: Stack, email: str) -> None:
    url = f"{stack.url('ingest')}/webhooks/hubspot/forms?form_type=demo_request&campaign=compose"
    body = json.dumps(
        {
            "submittedAt": str(int(time.time() * 1000)),
            "fields": [
                {"objectTypeId": "0-1", "name": "email", "value": email},
                {"objectTypeId": "0-1", "name": "company", "value": "Compose Test Ltd"},
                {"objectTypeId": "0-1", "name": "country", "value": "United States"},
            ],
        }
    ).encode()
    secret = json.loads(stack.secrets["HUBSPOT_CLIENT_SECRETS"])[0]
    response = httpx.post(url, content=body, headers=hubspot_v3_headers(secret, url, body))
    assert response.is_success, f"ingest refused {email}: {response.status_code} {response.text}"


def routed_lead(stack: Stack, email: str) -> object | None:
    token = {"Authorization": f"Bearer {stack.secrets['API_READ_TOKEN']}"}
    response = httpx.get(
        f"{stack.url('router')}/leads", params={"email": email}, headers=token, timeout=5
    )
    response.raise_for_status()
    page = response.json()
    items = page.get("items", []) if isinstance(page, dict) else page
    return items[0] if items else None


def test_a_killed_consumer_comes_back_and_loses_no_event(stack: Stack) -> None:
    """The router's process dies (SIGKILL from the host, as a crash or the OOM killer);
    webhooks keep arriving meanwhile. The restart policy brings the container back and the
    router routes every lead: its consumer resumes from the committed offsets."""
    container = stack.container("router")
    restarts = int(stack.docker("inspect", "-f", "{{.RestartCount}}", container))
    pid = int(stack.docker("inspect", "-f", "{{.State.Pid}}", container))
    os.kill(pid, signal.SIGKILL)
    emails = [f"killed.{uuid.uuid4().hex[:8]}.{i}@compose-test.com" for i in range(20)]
    for email in emails:
        send_form(stack, email)

    def restarted() -> bool | None:
        count = int(stack.docker("inspect", "-f", "{{.RestartCount}}", container))
        return True if count > restarts and stack.health("router") == "healthy" else None

    poll("the router's container restarted and healthy", restarted, timeout_s=180)
    for email in emails:
        lead = poll(f"router lead {email}", lambda e=email: routed_lead(stack, e), 120)  # type: ignore[misc]
        assert isinstance(lead, dict) and lead.get("email") == email, lead


def test_down_v_removes_the_containers_and_the_named_volumes(stack: Stack) -> None:
    project = stack.compose[stack.compose.index("-p") + 1]
    result = stack("down", "-v", timeout_s=300)
    assert result.returncode == 0, result.stderr
    label = f"label=com.docker.compose.project={project}"
    assert stack.docker("ps", "-a", "-q", "--filter", label) == ""
    volumes = stack.docker("volume", "ls", "-q", "--filter", label).split()
    assert volumes == [], f"left behind: {volumes}"
