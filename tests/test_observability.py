"""deploy/observability/: the alert rules are valid and each has a unit test that passes
(`promtool test rules`, Debian's `prometheus` package), the Prometheus configuration is
valid, the dashboards and the rules name only metrics the services export, and the
compose profile runs Prometheus and Grafana with these files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.test_compose import published_ports, run_compose

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS = OBSERVABILITY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
HOW_TO_INSTALL = (
    "promtool is missing: `apt-get install -y prometheus` (Debian's package ships it; "
    "make test and deploy/local/bootstrap.sh install it)"
)


@cache
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def alert_names() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.processes  # promtool
def test_the_alert_rules_are_valid() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout + result.stderr


@pytest.mark.processes  # promtool
def test_the_prometheus_configuration_is_valid() -> None:
    result = run_promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_firing_it() -> None:
    fired = set()
    for path in ALERT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert set(alert_names()) - fired == set(), "alerts no test fires"
    assert len(alert_names()) == len(set(alert_names())), "an alert name used twice"


@pytest.mark.processes  # promtool
def test_the_alert_unit_tests_pass() -> None:
    assert ALERT_TESTS
    result = run_promtool("test", "rules", *(str(p) for p in ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@cache
def exported_metrics() -> set[str]:
    """Every sample name the services can export (counters' _total, histograms' _bucket,
    ...), from their modules' registrations; plus Prometheus's own `up`."""
    import revops.attribution.figures
    import revops.events.metrics
    import revops.ingest.api
    import revops.renewals.figures
    import revops.router.causal_order
    import revops.router.figures  # noqa: F401

    names: dict[str, Any] = REGISTRY._names_to_collectors
    return {name for name in names if name.startswith("revops_")} | {"up"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    return [
        (path.name, panel["title"], target["expr"])
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
    ]


METRIC = re.compile(r"\b(revops_[a-z0-9_]+|up)\b(?=\s*[{\[)])")


def test_the_dashboards_and_alerts_name_only_metrics_the_services_export() -> None:
    queries = [(f"{n}: {t}", e) for n, t, e in dashboard_queries()]
    rules = yaml.safe_load(ALERTS.read_text())
    queries += [
        (f"alert {r['alert']}", str(r["expr"])) for g in rules["groups"] for r in g["rules"]
    ]
    unknown = [
        (where, name)
        for where, expr in queries
        for name in METRIC.findall(expr)
        if name not in exported_metrics()
    ]
    assert len(queries) > 20
    assert unknown == []


def test_the_dashboards_read_the_provisioned_prometheus_and_have_their_own_ids() -> None:
    [source] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert [p.stem for p in DASHBOARDS] == ["business", "plumbing"]
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        panels = board["panels"]
        assert len({p["id"] for p in panels}) == len(panels), path.name
        for panel in panels:
            assert panel["datasource"]["uid"] == source["uid"], (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
    assert len(uids) == len(DASHBOARDS)


@pytest.mark.processes  # docker compose
def test_the_compose_profile_runs_prometheus_and_grafana_with_these_files() -> None:
    result = run_compose("--profile", "observability", "config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert ("127.0.0.1", 9090, 9090) in published_ports(prometheus)
    assert ("127.0.0.1", 3000, 3000) in published_ports(grafana)
    mounted = json.dumps([prometheus["volumes"], grafana["volumes"]])
    for folder in ("prometheus", "grafana/provisioning", "grafana/dashboards"):
        assert f"deploy/observability/{folder}" in mounted
    # The scrape targets are the compose services' own names and ports.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {"ingest:8000", "router:8001", "attribution:8002", "renewals:8003"}
    assert {name.split(":")[0] for name in targets} <= set(services)
