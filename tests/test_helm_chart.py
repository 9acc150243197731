"""The Helm chart (deploy/helm/revops) lints, renders, and every object it renders is valid.

Helm's own engine renders it, offline: deploy/helm/helm.sh runs helm-java (Helm as a
native library, from Maven Central) with the machine's Java, resolving it on first use.
Built-in kinds are checked against the Kubernetes API schemas of KUBERNETES_VERSION
(`kubernetes-validate`, strict: an unknown field is an error); the Strimzi, CloudNativePG
and Prometheus Operator resources against their CRDs' schemas (tests/helm/crds, where
their source is named), made strict the same way. Then what the system needs is checked
object by object: probes, resources, disruption budgets, the autoscaler, secrets that
exist, three replicated brokers, the topics of libs/events, one role and schema per
service; and the values the chart must refuse.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from revops.events import topics as catalogue

# The chart is rendered and linted by helm-java in a JVM: not in `make unit`.
pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "revops"
HELM = ROOT / "deploy" / "helm" / "helm.sh"
CRDS = Path(__file__).resolve().parent / "helm" / "crds"
# The Kubernetes release the chart is validated for (kubernetes-validate carries its schemas).
KUBERNETES_VERSION = "1.34.0"

SERVICES = ("ingest", "router", "attribution", "renewals", "console")
CONSUMERS = ("router", "attribution", "renewals")

PRODUCTION_SECRETS: dict[str, Any] = {
    "secrets": {
        "create": True,
        "values": {
            "apiToken": "admin-token-for-the-test",
            "apiReadToken": "read-token-for-the-test",
            "sessionSecret": "session-secret-for-the-test",
            "hubspotClientSecrets": ["hubspot-secret"],
            "salesforceEventsSecrets": ["relay-secret"],
            "productWebhookSecrets": ["whsec_cHJvZHVjdC1zZWNyZXQtZm9yLXRoZS10ZXN0"],
            "hubspotToken": "hubspot-token",
            "databasePasswords": {"router": "r-pw", "attribution": "a-pw", "renewals": "n-pw"},
        },
    }
}

# Each case: the values files layered over the chart's values.yaml, in order.
CASES: dict[str, list[dict[str, Any]]] = {
    "default": [],
    "production": [PRODUCTION_SECRETS],
    "prefixed": [PRODUCTION_SECRETS, {"topicPrefix": "staging-"}],
    "no_monitor": [{"serviceMonitor": {"enabled": False}}],
    "too_many_routers": [{"services": {"router": {"replicas": 7}}}],
    "autoscaled_past_partitions": [
        {
            "services": {
                "attribution": {
                    "autoscaling": {
                        "enabled": True,
                        "minReplicas": 2,
                        "maxReplicas": 7,
                        "targetCPUUtilizationPercentage": 70,
                    }
                }
            }
        }
    ],
    "secrets_missing": [{"secrets": {"create": True}}],
    "salesforce_stream": [
        PRODUCTION_SECRETS,
        {
            "salesforceStream": {"enabled": True, "topics": ["/data/AccountChangeEvent"]},
            "secrets": {
                "values": {"salesforceClientId": "app-key", "salesforceClientSecret": "app-secret"}
            },
        },
    ],
    "salesforce_stream_without_credentials": [
        PRODUCTION_SECRETS,
        {"salesforceStream": {"enabled": True}},
    ],
    "password_not_url_safe": [
        PRODUCTION_SECRETS,
        {"secrets": {"values": {"databasePasswords": {"router": "p@ss/word"}}}},
    ],
}


@dataclass(frozen=True)
class Render:
    objects: list[dict[str, Any]]
    error: str | None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Render]:
    """Lint once and render every case, in one JVM (about 10 s; the first run also
    resolves helm-java from Maven Central)."""
    work = tmp_path_factory.mktemp("helm")
    args = []
    for name, layers in CASES.items():
        files = []
        for i, layer in enumerate(layers):
            path = work / f"{name}-{i}.yaml"
            path.write_text(yaml.safe_dump(layer))
            files.append(str(path))
        args.append(f"{name}={','.join(files)}")
    out = work / "out"
    result = subprocess.run(
        [str(HELM), "cases", str(CHART), KUBERNETES_VERSION, str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"deploy/helm/helm.sh failed (it needs Java 17+ and Maven; deploy/local/bootstrap.sh "
        f"installs both):\n{result.stdout}\n{result.stderr}"
    )
    renders = {"lint": Render([], (out / "lint.txt").read_text())}
    for name in CASES:
        error_file = out / f"{name}.error"
        if error_file.exists():
            renders[name] = Render([], error_file.read_text())
        else:
            docs = yaml.safe_load_all((out / f"{name}.yaml").read_text())
            renders[name] = Render([d for d in docs if d], None)
    return renders


def production(rendered: dict[str, Render]) -> Render:
    render = rendered["production"]
    assert render.error is None, render.error
    return render


# --- Helm's lint and the schemas ---------------------------------------------------------


def test_the_chart_passes_helms_strict_lint(rendered: dict[str, Render]) -> None:
    report = rendered["lint"].error or ""
    assert report.startswith("OK"), report


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, made strict."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict(schema: Any) -> Any:
    """A field the schema does not name is an error (as with the API server's strict field
    validation), except where the schema keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schema_errors(obj: dict[str, Any]) -> list[str]:
    where = f"{obj['kind']} {obj['metadata']['name']}"
    custom = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if custom is not None:
        validator = jsonschema.Draft7Validator(custom)
        return [
            f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no schema for {obj['apiVersion']} {obj['kind']}"]
    return []


@pytest.mark.parametrize(
    "case", ["default", "production", "prefixed", "no_monitor", "salesforce_stream"]
)
def test_every_rendered_object_is_valid(rendered: dict[str, Render], case: str) -> None:
    render = rendered[case]
    assert render.error is None, render.error
    errors = [e for obj in render.objects for e in schema_errors(obj)]
    assert not errors, "\n".join(errors)


def test_the_validation_rejects_what_the_api_server_would() -> None:
    """The checks above can fail: a typo in a built-in and in a custom resource."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}},
            "replicaz": 2,
        },
    }
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "x"},
        "spec": {"partitions": "six"},
    }
    assert schema_errors(deployment)
    assert any("partitions" in e for e in schema_errors(topic))


# --- the services -----------------------------------------------------------------------


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_deployed_ready_only_on_readyz_with_resources_and_a_budget(
    rendered: dict[str, Render], service: str
) -> None:
    render = production(rendered)
    name = f"revops-{service}"
    deployment = render.one("Deployment", name)
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) >= {"cpu", "memory"}, kind
    assert container["command"] == [f"revops-{service}"]
    assert env_of(deployment)["REVOPS_ENV"]["value"] == "production"
    assert env_of(deployment)["HTTP_PORT"]["value"] == str(port)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])

    budget = render.one("PodDisruptionBudget", name)
    assert budget["spec"]["minAvailable"] == 1
    assert selects(budget["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])

    svc = render.one("Service", name)
    assert selects(svc["spec"]["selector"], pod["metadata"]["labels"])
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
    ]
    # A budget of 1 leaves room to drain a node only with more than one instance.
    replicas = deployment["spec"].get("replicas")
    autoscaler = [
        h
        for h in render.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == name
    ]
    least = autoscaler[0]["spec"]["minReplicas"] if autoscaler else replicas
    assert least >= 2


def test_ingest_scales_out_on_cpu(rendered: dict[str, Render]) -> None:
    render = production(rendered)
    (hpa,) = render.of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "revops-ingest",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2
    # The autoscaler owns the count: a fixed one would fight it on every upgrade.
    assert "replicas" not in render.one("Deployment", "revops-ingest")["spec"]


def test_consumer_instances_stop_at_the_partition_count(rendered: dict[str, Render]) -> None:
    error = rendered["too_many_routers"].error or ""
    assert "services.router: 7 instances" in error and "at most 6 partitions" in error, error
    error = rendered["autoscaled_past_partitions"].error or ""
    assert "services.attribution: 7 instances" in error, error


def test_the_chart_knows_which_topics_each_service_consumes() -> None:
    """values.yaml's `consumes` (which bounds the instances) is what each service reads."""
    from revops.attribution.main import SPEC as ATTRIBUTION
    from revops.renewals.main import SPEC as RENEWALS
    from revops.router.main import SPEC as ROUTER

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for spec in (ROUTER, ATTRIBUTION, RENEWALS):
        consumes = set(values["services"][spec.name]["consumes"])
        assert consumes == {t.base_name for t in spec.topics}, spec.name


def secret_refs(render: Render) -> Iterator[tuple[str, dict[str, Any]]]:
    for deployment in render.of_kind("Deployment"):
        for env in env_of(deployment).values():
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                yield deployment["metadata"]["name"], ref


def test_every_secret_a_service_reads_is_rendered_with_that_key(
    rendered: dict[str, Render],
) -> None:
    render = production(rendered)
    secrets = {s["metadata"]["name"]: s for s in render.of_kind("Secret")}
    refs = list(secret_refs(render))
    assert len(refs) > 10
    for deployment, ref in refs:
        secret = secrets.get(ref["name"])
        assert secret is not None, f"{deployment} reads Secret {ref['name']}, not rendered"
        if not ref.get("optional"):
            assert ref["key"] in secret["stringData"], f"{deployment}: {ref}"
    ingest = env_of(render.one("Deployment", "revops-ingest"))
    for key in ("HUBSPOT_CLIENT_SECRETS", "SALESFORCE_EVENTS_SECRETS", "PRODUCT_WEBHOOK_SECRETS"):
        assert ingest[key]["valueFrom"]["secretKeyRef"]["name"] == "revops-webhook-secrets"
    webhook = secrets["revops-webhook-secrets"]["stringData"]
    assert webhook["HUBSPOT_CLIENT_SECRETS"] == '["hubspot-secret"]'


def test_by_default_the_chart_only_refers_to_secrets_made_beforehand(
    rendered: dict[str, Render],
) -> None:
    render = rendered["default"]
    assert render.error is None, render.error
    assert render.of_kind("Secret") == []
    names = {ref["name"] for _, ref in secret_refs(render)}
    assert names == {
        "revops-api-tokens",
        "revops-webhook-secrets",
        "revops-crm-tokens",
        "revops-db-router",
        "revops-db-attribution",
        "revops-db-renewals",
    }


def test_secrets_the_chart_writes_must_all_be_given(rendered: dict[str, Render]) -> None:
    error = rendered["secrets_missing"].error or ""
    assert "secrets.values.apiToken is required" in error, error
    error = rendered["password_not_url_safe"].error or ""
    assert "secrets.values.databasePasswords.router may hold only" in error, error


def test_the_service_monitor_scrapes_every_service(rendered: dict[str, Render]) -> None:
    render = production(rendered)
    (monitor,) = render.of_kind("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in render.of_kind("Service") if selects(selector, s["metadata"]["labels"])]
    assert sorted(s["metadata"]["name"] for s in scraped) == sorted(f"revops-{s}" for s in SERVICES)
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert rendered["no_monitor"].of_kind("ServiceMonitor") == []


def test_the_console_reads_the_four_services_by_their_service_names(
    rendered: dict[str, Render],
) -> None:
    env = env_of(production(rendered).one("Deployment", "revops-console"))
    assert env["INGEST_URL"]["value"] == "http://revops-ingest:8000"
    assert env["ROUTER_URL"]["value"] == "http://revops-router:8001"
    assert env["ATTRIBUTION_URL"]["value"] == "http://revops-attribution:8002"
    assert env["RENEWALS_URL"]["value"] == "http://revops-renewals:8003"
    assert env["SESSION_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "SESSION_SECRET"


# --- Kafka ------------------------------------------------------------------------------


def test_kafka_is_three_kraft_brokers_replicating_every_write_to_two(
    rendered: dict[str, Render],
) -> None:
    render = production(rendered)
    (kafka,) = render.of_kind("Kafka")
    pools = render.of_kind("KafkaNodePool")
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == "revops-kafka" for p in pools)
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers == 3 and controllers == 3
    # One Strimzi 1.2 supports (its kafka-versions.yaml): it refuses any other.
    assert kafka["spec"]["kafka"]["version"] in {"4.2.0", "4.2.1", "4.3.0", "4.3.1"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["unclean.leader.election.enable"] is False
    assert config["auto.create.topics.enable"] is False
    for service in ("ingest", "router", "attribution", "renewals"):
        env = env_of(render.one("Deployment", f"revops-{service}"))
        assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "revops-kafka-kafka-bootstrap:9092"


@pytest.mark.parametrize("case, prefix", [("production", ""), ("prefixed", "staging-")])
def test_the_topics_are_those_of_libs_events_replicated_three_times(
    rendered: dict[str, Render], case: str, prefix: str
) -> None:
    render = rendered[case]
    assert render.error is None, render.error
    wanted = {}
    for spec in catalogue.ALL_TOPICS:
        wanted[spec.name(prefix)] = (spec.partitions, spec.retention_ms)
        wanted[spec.dlq_name(prefix)] = (catalogue.DLQ_PARTITIONS, catalogue.DLQ_RETENTION_MS)
    topics = render.of_kind("KafkaTopic")
    got = {
        t["spec"]["topicName"]: (t["spec"]["partitions"], t["spec"]["config"]["retention.ms"])
        for t in topics
    }
    assert got == wanted
    for topic in topics:
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "revops-kafka"
    for deployment in render.of_kind("Deployment"):
        assert env_of(deployment)["TOPIC_PREFIX"]["value"] == prefix


# --- Postgres ---------------------------------------------------------------------------


def test_postgres_is_three_instances_with_a_role_and_a_schema_per_service(
    rendered: dict[str, Render],
) -> None:
    render = production(rendered)
    (cluster,) = render.of_kind("Cluster")
    assert cluster["spec"]["instances"] == 3
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert set(roles) == set(CONSUMERS)
    sql = cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    for service in CONSUMERS:
        role = roles[service]
        assert role["login"] is True and role["superuser"] is False
        secret = render.one("Secret", role["passwordSecret"]["name"])
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert secret["stringData"]["username"] == service
        assert f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {service}" in sql
        env = env_of(render.one("Deployment", f"revops-{service}"))
        assert env["DB_USER"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert (
            env["DATABASE_URL"]["value"]
            == "postgresql+asyncpg://$(DB_USER):$(DB_PASSWORD)@revops-pg-rw:5432/revops"
        )
    # Kubernetes expands $(VAR) only from variables defined before it.
    names = list(env_of(render.one("Deployment", "revops-router")))
    assert names.index("DB_PASSWORD") < names.index("DATABASE_URL")


# --- the change-event stream ---------------------------------------------------------------


def test_the_salesforce_stream_is_off_unless_enabled(rendered: dict[str, Render]) -> None:
    for case in ("default", "production"):
        names = {o["metadata"]["name"] for o in rendered[case].objects}
        assert not any("salesforce-stream" in n for n in names), case


def test_the_salesforce_stream_is_one_instance_keeping_its_replay_ids_on_a_volume(
    rendered: dict[str, Render],
) -> None:
    render = rendered["salesforce_stream"]
    assert render.error is None, render.error
    name = "revops-salesforce-stream"
    deployment = render.one("Deployment", name)
    # Two at once would publish every event twice and race on the stored replay ids.
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["revops-ingest", "salesforce-stream"]
    assert container["image"].startswith("revops-ingest:")
    env = env_of(deployment)
    assert env["SALESFORCE_CDC_TOPICS"]["value"] == '["/data/AccountChangeEvent"]'
    assert env["SALESFORCE_STREAM_METRICS_PORT"]["value"] == "8005"
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "revops-kafka-kafka-bootstrap:9092"
    state = Path(env["SALESFORCE_STREAM_STATE_FILE"]["value"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert state.parent == Path(mounts["state"])
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
    assert claims["state"] == {"claimName": name}
    render.one("PersistentVolumeClaim", name)
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "http"}

    # The connected app's credentials come from the CRM tokens' Secret, written with them.
    secret = render.one("Secret", "revops-crm-tokens")["stringData"]
    for key, value in (
        ("SALESFORCE_CLIENT_ID", "app-key"),
        ("SALESFORCE_CLIENT_SECRET", "app-secret"),
    ):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "revops-crm-tokens", "key": key}
        assert secret[key] == value
    error = rendered["salesforce_stream_without_credentials"].error or ""
    assert "secrets.values.salesforceClientId is required" in error, error

    # Its metrics are scraped with the services'.
    (monitor,) = render.of_kind("ServiceMonitor")
    service = render.one("Service", name)
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert selects(
        service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    assert service["spec"]["ports"][0]["name"] == monitor["spec"]["endpoints"][0]["port"]
