"""`deploy/local/postgres.sh start` (what `make up` and `make infra` run) on a machine whose
Postgres was there before: it creates what is missing, prints it, and alters nothing that
exists (settings, pg_hba.conf, port, running server, roles and their passwords) unless the
operator opts in.

Each test makes a throw-away Debian cluster of its own (`pg_createcluster`) on a free
port, with roles of its own, so the shared server on 5432 is never touched; the cluster is
dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Each test creates and drops a Postgres cluster: not in `make unit`.
pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "local" / "postgres.sh"
ROUTER_OWN = "router-own-secret"
REVOPS_OWN = "revops-own-secret"
SUPERUSER_PSQL = ("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-tA")
TOOLS = ("pg_createcluster", "pg_dropcluster", "pg_ctlcluster", "pg_lsclusters", "psql", "runuser")


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int

    @property
    def config_dir(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name

    def sql(self, query: str, database: str = "postgres") -> str:
        """A query as the cluster's superuser (peer login over its socket)."""
        result = subprocess.run(
            [*SUPERUSER_PSQL, "-p", str(self.port), "-d", database, "-c", query],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout.strip()

    def can_log_in(self, role: str, password: str) -> bool:
        url = f"postgresql://{role}:{password}@127.0.0.1:{self.port}/revops"
        result = subprocess.run(
            ["psql", "-X", "-q", "-tA", url, "-c", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.returncode == 0


def _require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: these tests make a Debian Postgres cluster of "
            "their own; `apt-get install -y postgresql` (make test installs it)"
        )
    if os.geteuid() != 0:
        pytest.fail("these tests create and drop a Postgres cluster, which needs root")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def existing_cluster() -> Iterator[Cluster]:
    """Someone's own running cluster, with roles `revops` and `router` of their own."""
    _require_tools()
    version = sorted(os.listdir("/usr/lib/postgresql"), key=float)[-1]
    cluster = Cluster(version, f"revops_t{secrets.token_hex(4)}", _free_port())
    subprocess.run(
        ["pg_createcluster", version, cluster.name, "--port", str(cluster.port), "--start"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    try:
        cluster.sql(f"CREATE ROLE router LOGIN PASSWORD '{ROUTER_OWN}'")
        cluster.sql(f"CREATE ROLE revops LOGIN CREATEDB PASSWORD '{REVOPS_OWN}'")
        yield cluster
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", version, cluster.name],
            capture_output=True,
            timeout=120,
            check=False,
        )


def _start(cluster: Cluster, state: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("REVOPS_PG_") and not k.endswith("_DATABASE_URL")
    }
    env.update(PG_PORT=str(cluster.port), REVOPS_STATE_DIR=str(state), **extra)
    return subprocess.run(
        ["bash", str(SCRIPT), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _own_logins(cluster: Cluster) -> dict[str, str]:
    base = f"127.0.0.1:{cluster.port}/revops"
    return {
        "ROUTER_DATABASE_URL": f"postgresql+asyncpg://router:{ROUTER_OWN}@{base}",
        "REVOPS_DATABASE_URL": f"postgresql://revops:{REVOPS_OWN}@{base}",
    }


def _what_exists(cluster: Cluster) -> dict[str, object]:
    """Everything `start` must leave as it was on a server it did not create."""
    return {
        "files": {
            path.name: path.read_text()
            for path in sorted(cluster.config_dir.rglob("*"))
            if path.is_file()
        },
        "port": cluster.sql("SHOW port"),
        "started": cluster.sql("SELECT pg_postmaster_start_time()"),
        "roles": cluster.sql(
            "SELECT string_agg(concat_ws(' ', rolname, rolpassword, rolsuper, rolcreatedb,"
            " rolcanlogin), E'\\n' ORDER BY rolname) FROM pg_authid"
            " WHERE rolname IN ('revops', 'router')"
        ),
    }


def test_an_existing_cluster_and_its_roles_are_left_as_they_are(
    existing_cluster: Cluster, tmp_path: Path
) -> None:
    before = _what_exists(existing_cluster)

    result = _start(existing_cluster, tmp_path, **_own_logins(existing_cluster))

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"using cluster {existing_cluster.version}/{existing_cluster.name}" in out
    assert "as it is" in out
    # What it made is printed, and only that.
    for made in (
        "created role attribution",
        "created role renewals",
        "created database revops ",
        "created database revops_test",
        "created schema router in database revops",
    ):
        assert made in out, out
    assert "created role router" not in out and "created role revops" not in out
    assert "set the passwords" not in out
    assert _what_exists(existing_cluster) == before
    assert existing_cluster.can_log_in("router", ROUTER_OWN)
    assert not existing_cluster.can_log_in("router", "router")
    assert existing_cluster.can_log_in("attribution", "attribution")  # made by start

    # Again: nothing left to create, still nothing altered.
    again = _start(existing_cluster, tmp_path, **_own_logins(existing_cluster))
    assert again.returncode == 0, again.stderr
    assert "postgres: created" not in again.stdout
    assert _what_exists(existing_cluster) == before


def test_a_role_with_its_own_password_is_named_not_reset(
    existing_cluster: Cluster, tmp_path: Path
) -> None:
    before = _what_exists(existing_cluster)

    result = _start(existing_cluster, tmp_path)  # no ROUTER_DATABASE_URL given

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "role revops cannot log in" in last
    assert "REVOPS_DATABASE_URL=" in last and "REVOPS_PG_RESET_PASSWORDS=1" in last
    assert _what_exists(existing_cluster) == before


def test_the_operator_may_opt_in_to_development_passwords(
    existing_cluster: Cluster, tmp_path: Path
) -> None:
    result = _start(existing_cluster, tmp_path, REVOPS_PG_RESET_PASSWORDS="1")

    assert result.returncode == 0, result.stderr
    assert "set the passwords of roles revops, router" in result.stdout
    assert existing_cluster.can_log_in("router", "router")
    assert not existing_cluster.can_log_in("router", ROUTER_OWN)


def test_a_stopped_cluster_of_someone_else_is_neither_started_nor_changed(
    existing_cluster: Cluster, tmp_path: Path
) -> None:
    cluster = existing_cluster
    subprocess.run(
        ["pg_ctlcluster", cluster.version, cluster.name, "stop", "-m", "fast"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    files = {p.name: p.read_text() for p in cluster.config_dir.rglob("*") if p.is_file()}

    result = _start(cluster, tmp_path)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f"cluster {cluster.version}/{cluster.name}" in last
    assert "REVOPS_PG_ADOPT=1" in last and "pg_ctlcluster" in last
    assert {p.name: p.read_text() for p in cluster.config_dir.rglob("*") if p.is_file()} == files
    status = subprocess.run(
        ["pg_lsclusters", "-h", cluster.version, cluster.name],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "down" in status.stdout
