"""Fixtures shared by every test directory of the workspace."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

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
_containers: contextlib.ExitStack | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Where Kafka or Postgres is not running here but a container engine answers, start
    both in containers (testcontainers) and point every test at them: through the same
    environment variables a developer would set, before any test module is imported.
    Without an engine, nothing happens and the `infra` fixture says how to start them."""
    global _containers
    if os.environ.get("REVOPS_TESTCONTAINERS", "auto") == "off":
        return
    try:
        require_infrastructure()
        return
    except InfrastructureMissing:
        pass
    if not _container_engine_answers():
        return
    _containers = contextlib.ExitStack()
    os.environ.update(_containers.enter_context(_kafka_and_postgres_in_containers()))


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


def _container_engine_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
    except Exception:  # no client library, no socket, no engine: all mean "no"
        return False
    return True


@contextlib.contextmanager
def _kafka_and_postgres_in_containers() -> Iterator[dict[str, str]]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    with (
        KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as kafka,
        PostgresContainer("postgres:15", password="postgres", driver=None) as postgres,
    ):
        # The same roles, databases and schemas as deploy/local/postgres.sh creates.
        sql = INIT_SQL.read_text()
        result: Any = postgres.exec(
            ["sh", "-c", f"psql -X -q -U postgres -v ON_ERROR_STOP=1 <<'SQL'\n{sql}\nSQL"]
        )
        if result.exit_code != 0:
            raise RuntimeError(f"postgres-init.sql failed in the container: {result.output!r}")
        host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
        env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server()}
        for role in ROLES:
            env[f"TEST_{role.upper()}_DATABASE_URL"] = (
                f"postgresql+asyncpg://{role}:{role}@{host}:{port}/revops_test"
            )
        yield env


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
