"""docker-compose.yml is valid and describes the whole system.

No container runs here: the file is checked by Compose itself (`docker compose config`
where the plugin exists, else Debian's `docker-compose`, which needs no engine for
`config`), then its normalised form is read back to check the services, their ports,
health checks and start order.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

# Each test runs Compose (`config`): a process, so not in `make unit`.
pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PASSWORDS_SCRIPT = ROOT / "deploy" / "local" / "postgres-passwords.sh"
APP_PORTS = {"ingest": 8000, "router": 8001, "attribution": 8002, "renewals": 8003}
CONSUMERS = ("router", "attribution", "renewals")


@cache
def compose_command() -> tuple[str, ...]:
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    pytest.fail(
        "neither `docker compose` nor `docker-compose` is installed, so docker-compose.yml "
        "cannot be validated: run `apt-get install -y docker-compose` "
        "(or deploy/local/bootstrap.sh)"
    )


def run_compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    # The example's values, not a developer's own .env: the same answer on every machine.
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@cache
def normalised() -> dict[str, Any]:
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = normalised()["services"]
    assert name in services, f"service {name!r} missing from docker-compose.yml"
    return dict(services[name])


def published_ports(svc: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host ip, published, target) of every port, in either Compose's notation."""
    found = set()
    for port in svc.get("ports", []):
        if isinstance(port, dict):  # compose v2: long syntax
            found.add((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:  # compose v1: "127.0.0.1:8000:8000/tcp"
            parts = str(port).split("/")[0].split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            found.add((host_ip, int(parts[-2]), int(parts[-1])))
    return found


def named_volumes(svc: dict[str, Any]) -> dict[str, str]:
    """Target folder -> named volume, in either Compose's notation (a bind mount's source
    is a path, a named volume's is a name)."""
    found = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, dict):  # compose v2: long syntax
            if volume.get("type") == "volume":
                found[str(volume["target"])] = str(volume["source"])
        else:  # compose v1: "kafka-data:/var/lib/kafka/data:rw"
            source, target = str(volume).split(":")[:2]
            if not source.startswith(("/", ".")):
                found[target] = source
    return found


def healthcheck_text(svc: dict[str, Any]) -> str:
    test = svc.get("healthcheck", {}).get("test")
    assert test, "no health check"
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_file_is_valid() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, f"{' '.join(compose_command())} config -q: {result.stderr}"


def example_values() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_the_services_secrets_come_from_the_env_file() -> None:
    """They listen on 0.0.0.0 in their containers: with the public development tokens they
    would refuse to start (the production guard), so every one is set from .env."""
    values = example_values()
    for name in ("router", "attribution", "renewals", "console"):  # the console calls them
        env = service(name)["environment"]
        assert env["API_TOKEN"] == values["API_TOKEN"]
        assert env["API_READ_TOKEN"] == values["API_READ_TOKEN"]
    ingest = service("ingest")["environment"]
    for secret in (
        "HUBSPOT_CLIENT_SECRETS",
        "SALESFORCE_EVENTS_SECRETS",
        "PRODUCT_WEBHOOK_SECRETS",
    ):
        assert ingest[secret] == values[secret]
        assert "dev-" not in ingest[secret]


def test_without_an_env_file_compose_says_which_secret_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "set " in result.stderr and "in .env (see .env.example)" in result.stderr


def test_kafka_is_a_single_kraft_node_on_loopback() -> None:
    kafka = service("kafka")
    assert kafka["image"] == "apache/kafka:3.9.2"  # the default of KAFKA_IMAGE
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == "false"
    assert ("127.0.0.1", 9092, 9092) in published_ports(kafka)
    assert "kafka-broker-api-versions" in healthcheck_text(kafka)


@pytest.mark.parametrize(
    ("name", "folder"),
    [("kafka", "/var/lib/kafka/data"), ("postgres", "/var/lib/postgresql/data")],
)
def test_kafka_and_postgres_keep_their_data_in_named_volumes(name: str, folder: str) -> None:
    named = named_volumes(service(name))
    assert folder in named, f"{name}: no named volume at {folder} (down would lose its data)"
    assert named[folder] in normalised().get("volumes", {})
    if name == "kafka":
        assert service(name)["environment"]["KAFKA_LOG_DIRS"] == folder


def test_postgres_runs_the_same_init_script_as_the_local_setup() -> None:
    postgres = service("postgres")
    assert postgres["image"] == "postgres:15"  # the default of POSTGRES_IMAGE
    assert ("127.0.0.1", 5432, 5432) in published_ports(postgres)
    assert "psql" in healthcheck_text(postgres)
    mounts = [str(v if isinstance(v, str) else v.get("source")) for v in postgres["volumes"]]
    assert any(m.split(":")[0].endswith("deploy/local/postgres-init.sql") for m in mounts), mounts


def test_topics_are_created_once_kafka_is_healthy() -> None:
    topics = service("topics")
    assert_built_from_the_one_dockerfile(topics, "ingest")
    assert topics["image"] == service("ingest")["image"]
    assert topics["command"] == ["revops", "topics", "ensure"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(APP_PORTS))
def test_each_service_is_built_published_and_health_checked(name: str) -> None:
    svc = service(name)
    port = APP_PORTS[name]
    assert_built_from_the_one_dockerfile(svc, name)
    assert svc["command"] == [f"revops-{name}"]
    assert ("127.0.0.1", port, port) in published_ports(svc)
    assert f"127.0.0.1:{port}/healthz" in healthcheck_text(svc)
    env = svc["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert str(env["HTTP_PORT"]) == str(port)
    assert env["HTTP_HOST"] == "0.0.0.0"
    depends = svc["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", CONSUMERS)
def test_each_consumer_uses_its_own_role_and_waits_for_postgres(name: str) -> None:
    """With the role's own password from .env: the production guard refuses a role whose
    password is its name (the public development login) on 0.0.0.0."""
    svc = service(name)
    password = example_values()[f"{name.upper()}_DB_PASSWORD"]
    assert password != name
    url = f"postgresql+asyncpg://{name}:{password}@postgres:5432/revops"
    assert svc["environment"]["DATABASE_URL"] == url
    # Postgres gives the role that password on its first start, after creating it.
    postgres = service("postgres")
    assert postgres["environment"][f"{name.upper()}_DB_PASSWORD"] == password
    assert "initdb.d/20-passwords.sh" in str(postgres["volumes"])
    assert f"ALTER ROLE {name} PASSWORD :'{name}'" in PASSWORDS_SCRIPT.read_text()
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"


def assert_built_from_the_one_dockerfile(svc: dict[str, Any], name: str) -> None:
    assert svc["build"]["dockerfile"] == "Dockerfile"
    assert Path(svc["build"]["context"]).resolve() == ROOT
    assert svc["build"]["args"]["SERVICE"] == name
    assert svc["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"  # the default


def test_the_one_dockerfile_installs_only_the_chosen_package_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#")
    assert "ARG PYTHON_IMAGE=python:3.11-slim\nFROM ${PYTHON_IMAGE}" in text
    assert 'uv sync --frozen --no-dev --package "revops-${SERVICE}"' in text
    assert "COPY services/${SERVICE} services/${SERVICE}" in text
    assert "\nUSER " in text and "\nUSER root" not in text
    for name in [*APP_PORTS, "console"]:
        assert f"{name}) port=" in text, f"the Dockerfile does not know {name}'s port"
    assert not list(ROOT.glob("services/*/Dockerfile")), "one Dockerfile for every service"


def test_the_third_party_images_and_host_ports_come_from_variables(tmp_path: Path) -> None:
    env = tmp_path / "local.env"
    env.write_text(
        ENV_EXAMPLE.read_text()
        + "KAFKA_IMAGE=revops-kafka:3.9.2\nPOSTGRES_IMAGE=revops-postgres:15\n"
        + "PYTHON_IMAGE=revops-python:3.11\nKAFKA_HOST_PORT=19092\nROUTER_HOST_PORT=18001\n"
    )
    result = run_compose("config", env_file=env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["kafka"]["image"] == "revops-kafka:3.9.2"
    assert services["postgres"]["image"] == "revops-postgres:15"
    for name in [*APP_PORTS, "console", "topics"]:
        assert services[name]["build"]["args"]["PYTHON_IMAGE"] == "revops-python:3.11"
    assert ("127.0.0.1", 19092, 9092) in published_ports(services["kafka"])
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://127.0.0.1:19092" in listeners
    assert ("127.0.0.1", 18001, 8001) in published_ports(services["router"])


def test_the_console_is_built_published_and_reads_the_services_by_name() -> None:
    console = service("console")
    assert_built_from_the_one_dockerfile(console, "console")
    assert console["command"] == ["revops-console"]
    assert ("127.0.0.1", 8004, 8004) in published_ports(console)
    assert "127.0.0.1:8004/healthz" in healthcheck_text(console)
    env = console["environment"]
    for name, port in APP_PORTS.items():
        assert env[f"{name.upper()}_URL"] == f"http://{name}:{port}"
        assert name in console["depends_on"]
    # It reads APIs only: no database and no broker to reach.
    assert "DATABASE_URL" not in env and "KAFKA_BOOTSTRAP_SERVERS" not in env


def test_the_salesforce_stream_runs_only_with_its_profile_and_keeps_its_replay_ids() -> None:
    result = run_compose("--profile", "salesforce-stream", "config")
    assert result.returncode == 0, result.stderr
    svc = yaml.safe_load(result.stdout)["services"]["salesforce-stream"]
    assert svc["profiles"] == ["salesforce-stream"]  # `docker compose up` leaves it out
    assert_built_from_the_one_dockerfile(svc, "ingest")
    assert svc["image"] == service("ingest")["image"]
    assert svc["command"] == ["revops-ingest", "salesforce-stream"]
    env = svc["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    # The replay ids outlive the container: a restart resumes after the last one stored.
    state = Path(env["SALESFORCE_STREAM_STATE_FILE"])
    (volume,) = svc["volumes"]
    source, target = (
        (volume["source"], volume["target"])
        if isinstance(volume, dict)
        else str(volume).split(":")[:2]
    )
    assert state.parent == Path(target)
    assert source in normalised()["volumes"]
    port = int(env["SALESFORCE_STREAM_METRICS_PORT"])
    assert ("127.0.0.1", port, port) in published_ports(svc)
    assert f"127.0.0.1:{port}/metrics" in healthcheck_text(svc)
    assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
