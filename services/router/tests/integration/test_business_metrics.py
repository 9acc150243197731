"""The router's business figures at /metrics agree with its API: leads routed by rule and
queue and their webhook-to-routed times (counted once each), the leads waiting for an
owner, the open SLA breaches."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

from .router_events import form

pytestmark = pytest.mark.infra


Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def figures(client: httpx.AsyncClient) -> Figures:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_leads_routed_waiting_and_breaching_are_counted_as_the_api_lists_them(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    before = await figures(client)
    # Nobody works EMEA here: the leads wait, and, created an hour ago without a touch,
    # they are past the first-touch target.
    created = datetime.now(UTC) - timedelta(hours=1)
    emails = [f"metric{i}@emea-metrics{i}.example" for i in range(4)]
    await publish(kafka_settings, [form(email, created, country="DE") for email in emails])

    async def all_routed() -> list[dict[str, object]]:
        found = []
        for email in emails:
            r = await client.get("/leads", params={"email": email})
            assert r.status_code == 200 and len(r.json()["items"]) == 1, r.text
            found.append(r.json()["items"][0])
        return found

    leads = await eventually(all_routed, timeout_s=30, interval_s=0.1)
    after = await figures(client)

    by_rule_and_queue = Counter((str(lead["rule"]), str(lead["queue"] or "none")) for lead in leads)
    for (rule, queue), count in by_rule_and_queue.items():
        name = "revops_leads_routed_total"
        assert (
            value(after, name, rule=rule, queue=queue) - value(before, name, rule=rule, queue=queue)
            == count
        )
    histogram = "revops_lead_webhook_to_routed_seconds_count"
    assert value(after, histogram) - value(before, histogram) == len(emails)
    # received an hour ago (the events' received_at defaults to when they happened)
    total = "revops_lead_webhook_to_routed_seconds_sum"
    assert value(after, total) - value(before, total) >= len(emails) * 3600

    queues = (await client.get("/queues")).json()
    for waiting in queues["waiting"]:
        assert value(after, "revops_leads_waiting", queue=waiting["name"]) == waiting["count"]
    assert value(after, "revops_leads_waiting", queue="unassigned") >= len(emails)

    breaches = (await client.get("/sla/breaches", params={"limit": 500})).json()["items"]
    open_by_kind = Counter(b["kind"] for b in breaches if b["open"])
    for kind in ("first_touch", "first_status_change"):
        assert value(after, "revops_sla_breaches_open", kind=kind) == open_by_kind[kind]
    assert open_by_kind["first_touch"] >= len(emails)
