"""Fixtures shared by every test directory of the workspace."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import settings

from revops.events import admin
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    USED_PREFIXES,
    InfrastructureMissing,
    create_topics,
    delete_topics,
    require_infrastructure,
    unique_prefix,
)

ROLES = ("revops", "router", "attribution", "renewals", "reporting")
INIT_SQL = Path(__file__).parent / "deploy" / "local" / "postgres-init.sql"
# The images docker-compose.yml defaults to; KAFKA_IMAGE and POSTGRES_IMAGE choose others
# as they do there (deploy/compose/base-images.sh builds both where no registry answers).
KAFKA_IMAGE = "apache/kafka:3.9.2"
POSTGRES_IMAGE = "postgres:15"
# Generous: on two busy cores the JVM alone takes tens of seconds to start.
CONTAINER_READY_TIMEOUT_S = 180
_containers: contextlib.ExitStack | None = None
_container_report: list[str] = []
# Programs a unit test may start: git answers from this checkout in milliseconds.
QUICK_PROGRAMS = frozenset({"git"})

# `make unit` loads this profile (`--hypothesis-profile=fast`): a tenth of the examples, so
# the inner loop stays in seconds. Everything else, `make test` and CI included, keeps
# Hypothesis's full count; a test that names its own count scales it with
# `revops.events.testing.examples`.
settings.register_profile("fast", max_examples=10)


def pytest_configure(config: pytest.Config) -> None:
    """Where Kafka or Postgres is not running here but a container engine answers, start
    both in containers (testcontainers) and point every test at them: through the same
    environment variables a developer would set, before any test module is imported.
    Without an engine, nothing happens and the `infra` fixture says how to start them.
    REVOPS_TESTCONTAINERS=on starts the containers even where both run here (and fails
    without an engine); =off never starts them."""
    global _containers
    mode = os.environ.get("REVOPS_TESTCONTAINERS", "auto")
    if mode not in ("auto", "on", "off"):
        raise pytest.UsageError(f"REVOPS_TESTCONTAINERS={mode!r}: expected auto, on or off")
    if mode == "off" or (mode == "auto" and _infrastructure_answers()):
        return
    # "on" asks for the containers: wait longer for a busy engine, and say why it failed.
    problem = _container_engine_problem(timeout_s=30 if mode == "on" else 3)
    if problem is not None:
        if mode == "on":
            raise pytest.UsageError(
                "REVOPS_TESTCONTAINERS=on, but no container engine answers at "
                f"{os.environ.get('DOCKER_HOST', 'the default Docker socket')} ({problem}): "
                "start Docker or podman and set DOCKER_HOST (`make compose-engine` does both)"
            )
        return
    _containers = contextlib.ExitStack()
    os.environ.update(_containers.enter_context(_kafka_and_postgres_in_containers()))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _container_report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reaches Kafka or Postgres through the `infra` fixture (directly or
    through any fixture that depends on it, such as `kafka_settings`) is marked `infra`.
    `make unit` selects `not infra`: a new test is a unit test unless it asks for the
    infrastructure, so none can be missed; one that needs it without asking fails there,
    because `make unit` points Kafka and Postgres at a port where nothing listens."""
    infra = pytest.mark.infra
    for item in items:
        if "infra" in getattr(item, "fixturenames", ()):
            item.add_marker(infra)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under `make unit` a test module marked `infra` or `processes` as a whole is not even
    imported: its tests would all be deselected, and importing them (the services' apps,
    schemathesis) was a third of the loop's collection time."""
    if os.environ.get("REVOPS_UNIT") != "1" or not collection_path.name.startswith("test_"):
        return None
    if collection_path.suffix != ".py":
        return None
    return bool(_module_marks(collection_path) & {"infra", "processes"}) or None


def _module_marks(module: Path) -> set[str]:
    """The names X of the `pytest.mark.X` in a module's `pytestmark`, read without importing."""
    for node in ast.parse(module.read_bytes()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return {
                n.attr
                for n in ast.walk(node.value)
                if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "pytest.mark"
            }
    return set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Under `make unit` (REVOPS_UNIT=1) a test not marked `processes` that starts a program
    fails and says so: starting Compose, a JVM or a Postgres cluster is what made the unit
    loop take minutes, and without this a new one would slip in unnoticed."""
    if os.environ.get("REVOPS_UNIT") != "1" or item.get_closest_marker("processes"):
        return (yield)
    with mock.patch.object(subprocess, "Popen", _QuickProgramsOnly):
        return (yield)


class _QuickProgramsOnly(subprocess.Popen[Any]):
    def __init__(self, args: Any, *rest: Any, **options: Any) -> None:
        first = args if isinstance(args, str | bytes | os.PathLike) else args[0]
        program = Path(os.fsdecode(first).split()[0]).name
        if program not in QUICK_PROGRAMS:
            pytest.fail(
                f"this test starts `{program}`, so it is no unit test: mark it "
                "`@pytest.mark.processes` (`make unit` leaves those out)",
                pytrace=False,
            )
        super().__init__(args, *rest, **options)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete the topics of every prefix the tests used, whether or not their fixtures
    did (one list and one delete for the whole session)."""
    if not USED_PREFIXES:
        return
    try:
        asyncio.run(
            admin.delete_topics_with_prefix(
                KafkaSettings().kafka_bootstrap_servers, tuple(sorted(USED_PREFIXES))
            )
        )
    except Exception as exc:  # the broker may be the thing a test stopped: say so, go on
        print(f"\nleft the test topics on the broker: {exc.__class__.__name__}: {exc}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _containers is not None:
        _containers.close()


def _infrastructure_answers() -> bool:
    try:
        require_infrastructure()
    except InfrastructureMissing:
        return False
    return True


def _container_engine_problem(timeout_s: float) -> str | None:
    """None when a Docker-API engine answers, else what went wrong."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=timeout_s).ping()
    except Exception as exc:  # no client library, no socket, no engine: all mean "no"
        return f"{exc.__class__.__name__}: {exc}"
    return None


@contextlib.contextmanager
def _kafka_and_postgres_in_containers() -> Iterator[dict[str, str]]:
    kafka_image = os.environ.get("KAFKA_IMAGE", KAFKA_IMAGE)
    postgres_image = os.environ.get("POSTGRES_IMAGE", POSTGRES_IMAGE)
    # Names of this session's own, so `docker ps` tells whose containers these are.
    session = uuid.uuid4().hex[:8]
    kafka, postgres = f"revops-tests-kafka-{session}", f"revops-tests-postgres-{session}"
    with (
        _kafka_container(kafka_image, kafka) as bootstrap,
        _postgres_container(postgres_image, postgres) as at,
    ):
        _container_report[:] = [
            "Kafka and Postgres in containers (testcontainers): "
            f"{kafka} ({kafka_image}) at {bootstrap}, {postgres} ({postgres_image}) at {at}"
        ]
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        for role in ROLES:
            env[f"TEST_{role.upper()}_DATABASE_URL"] = (
                f"postgresql+asyncpg://{role}:{role}@{at}/revops_test"
            )
        yield env


@contextlib.contextmanager
def _kafka_container(image: str, name: str) -> Iterator[str]:
    """One KRaft node configured as docker-compose.yml configures it, through the KAFKA_*
    environment that apache/kafka (and the local revops-kafka) reads; the settings of
    `make infra`'s broker. Yields its bootstrap address."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    node = DockerContainer(image).with_name(name)
    # The broker must advertise the address the tests reach it at, so the host port is
    # chosen before the start (the one moment it could be taken is the start itself).
    host, port = node.get_docker_client().host(), _free_port()
    settings = {
        "NODE_ID": "1",
        "PROCESS_ROLES": "broker,controller",
        "CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "LISTENERS": "HOST://:9092,CONTROLLER://:9093",
        "ADVERTISED_LISTENERS": f"HOST://{host}:{port}",
        "LISTENER_SECURITY_PROTOCOL_MAP": "HOST:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "INTER_BROKER_LISTENER_NAME": "HOST",
        "OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "DEFAULT_REPLICATION_FACTOR": "1",
        "MIN_INSYNC_REPLICAS": "1",
        "AUTO_CREATE_TOPICS_ENABLE": "false",
        "GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "HEAP_OPTS": "-Xmx512m -Xms512m",
    }
    for name, value in settings.items():
        node.with_env(f"KAFKA_{name}", value)
    node.with_bind_ports(9092, port)
    node.waiting_for(
        LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(
            CONTAINER_READY_TIMEOUT_S
        )
    )
    with node:
        yield f"{host}:{port}"


@contextlib.contextmanager
def _postgres_container(image: str, name: str) -> Iterator[str]:
    """Postgres with the roles, databases and schemas deploy/local/postgres.sh creates.
    Yields its host:port."""
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(image, username="postgres", password="postgres", driver=None)
    with container.with_name(name) as db:
        sql = INIT_SQL.read_text()
        result: Any = db.exec(
            ["sh", "-c", f"psql -X -q -U postgres -v ON_ERROR_STOP=1 <<'SQL'\n{sql}\nSQL"]
        )
        if result.exit_code != 0:
            raise RuntimeError(f"postgres-init.sql failed in the container: {result.output!r}")
        yield f"{db.get_container_host_ip()}:{db.get_exposed_port(5432)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def infra() -> None:
    """Kafka and Postgres must be running; if not, fail and say how to start them."""
    try:
        require_infrastructure()
    except InfrastructureMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
async def kafka_settings(infra: None) -> AsyncIterator[KafkaSettings]:
    """Settings with a topic prefix of this test module's own, its topics created."""
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    yield settings
    await delete_topics(settings)
