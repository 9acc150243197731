"""End to end, across services: signed webhooks into ingest, answers from the other
services' APIs. All four apps run in this process (their real consumers, their real
schemas in revops_test) on one topic prefix of this module's own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from revops.attribution.main import SPEC as ATTRIBUTION_SPEC
from revops.attribution.main import build_app as build_attribution
from revops.attribution.settings import AttributionSettings
from revops.events import admin, topics
from revops.events.senders import hubspot_v3_headers, outbound_message, relay_headers
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, service_settings
from revops.events.topics import TopicSpec
from revops.ingest.main import build_app as build_ingest
from revops.ingest.settings import IngestSettings
from revops.renewals.main import SPEC as RENEWALS_SPEC
from revops.renewals.main import build_app as build_renewals
from revops.renewals.settings import RenewalsSettings
from revops.router.main import SPEC as ROUTER_SPEC
from revops.router.main import build_app as build_router
from revops.router.settings import RouterSettings

ADMIN = {"Authorization": "Bearer dev-admin-token"}
ORG = "00D000000000001AAA"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class System:
    ingest: httpx.AsyncClient
    router: httpx.AsyncClient
    attribution: httpx.AsyncClient
    renewals: httpx.AsyncClient
    prefix: str


@pytest.fixture(scope="module")
async def system(kafka_settings: KafkaSettings) -> AsyncIterator[System]:
    prefix = kafka_settings.topic_prefix
    router_settings = service_settings(RouterSettings, "router", prefix)
    attribution_settings = service_settings(AttributionSettings, "attribution", prefix)
    await fresh_schema(ROUTER_SPEC, router_settings.resolved_database_url())
    renewals_settings = service_settings(RenewalsSettings, "renewals", prefix)
    await fresh_schema(ATTRIBUTION_SPEC, attribution_settings.resolved_database_url())
    await fresh_schema(RENEWALS_SPEC, renewals_settings.resolved_database_url())
    apps = {
        "ingest": build_ingest(IngestSettings(topic_prefix=prefix)),
        "router": build_router(router_settings),
        "attribution": build_attribution(attribution_settings),
        "renewals": build_renewals(renewals_settings),
    }
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(LifespanManager(app, startup_timeout=60))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=f"http://{name}", headers=ADMIN
                )
            )
        yield System(**clients, prefix=prefix)


async def consumed(prefix: str, service: str, topic: TopicSpec) -> None:
    lags = await admin.group_lag(
        KafkaSettings().kafka_bootstrap_servers, f"{prefix}{service}", [topic.name(prefix)]
    )
    assert lags and sum(p.lag for p in lags) == 0 and sum(p.end for p in lags) > 0


async def post_form(system: System, email: str, form_type: str, country: str) -> httpx.Response:
    url = f"http://ingest/webhooks/hubspot/forms?form_type={form_type}&campaign=spring_launch"
    body = json.dumps(
        {
            "submittedAt": str(int(NOW.timestamp() * 1000)),
            "fields": [
                {"objectTypeId": "0-1", "name": "email", "value": email},
                {"objectTypeId": "0-1", "name": "country", "value": country},
            ],
            "context": {"pageUri": "https://www.example.com/demo?utm_source=google&utm_medium=cpc"},
        }
    ).encode()
    headers = hubspot_v3_headers("dev-hubspot-secret", url, body)
    return await system.ingest.post(url, content=body, headers=headers)


async def post_outbound(
    system: System, notification_id: str, sobject: str, fields: dict[str, Any]
) -> None:
    body = outbound_message(ORG, [(notification_id, sobject, fields)])
    response = await system.ingest.post(
        "/webhooks/salesforce/outbound", content=body, headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 200, response.text
    assert "<Ack>true</Ack>" in response.text


async def test_a_demo_request_is_routed_attributed_and_its_opportunity_sourced(system):
    created = (NOW - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    response = await system.router.post(
        "/reps",
        json={
            "id": "005E2ESAM",
            "name": "Sam",
            "email": "sam@example.com",
            "role": "SDR",
            "region": "AMER",
            "certified": True,
        },
    )
    assert response.status_code == 201, response.text

    async def rep_applied() -> None:  # published on the roster topic, applied a moment later
        assert (await system.router.get("/reps/005E2ESAM")).status_code == 200

    await eventually(rep_applied, timeout_s=30)
    await post_outbound(
        system,
        "04lE2EACC0001AAA",
        "Account",
        {
            "Id": "001E2EACME00001I5A",
            "Name": "Acme",
            "Website": "https://www.acme-e2e.com",
            "OwnerId": "005E2EALEX",
            "BillingCountry": "United States",
            "CreatedDate": created,
        },
    )

    # The account exists long before the lead in real life; across topics there is no
    # order, so wait until the router has read it.
    await eventually(lambda: consumed(system.prefix, "router", topics.ACCOUNTS), timeout_s=30)

    first = await post_form(system, "jane@acme-e2e.com", "demo_request", "US")
    again = await post_form(system, "jane@acme-e2e.com", "demo_request", "US")  # a retry
    assert first.status_code == again.status_code == 200, first.text

    async def routed():
        r = await system.router.get("/leads", params={"email": "jane@acme-e2e.com"})
        leads = r.json()["items"]
        assert len(leads) == 1, leads  # the resent form made no second lead
        return leads[0]

    lead = await eventually(routed, timeout_s=30)
    assert lead["owner_id"] == "005E2ESAM"
    assert lead["rule"] == "round_robin"
    assert lead["priority"] == "high"
    assert lead["account_id"] == "001E2EACME00001I5A"

    async def attributed():
        r = await system.attribution.get("/leads", params={"email": "jane@acme-e2e.com"})
        assert r.status_code == 200, r.text
        return r.json()

    person = await eventually(attributed, timeout_s=30)
    assert person["lead_source"] == "Inbound"
    assert person["first_touchpoint"] == "Contact/Demo Form"
    assert person["original_source"] == "PAID_SEARCH"

    conversion = json.dumps(
        [
            {
                "data": {
                    "schema": "s",
                    "payload": {
                        "ChangeEventHeader": {
                            "entityName": "Lead",
                            "recordIds": ["00QE2EJANE00001M5A"],
                            "changeType": "UPDATE",
                            "changeOrigin": "",
                            "transactionKey": "t-e2e",
                            "sequenceNumber": 1,
                            "commitTimestamp": int(NOW.timestamp() * 1000) + 60_000,
                            "commitNumber": 1,
                            "commitUser": "005E2ESAM",
                            "changedFields": [
                                "IsConverted",
                                "ConvertedAccountId",
                                "ConvertedOpportunityId",
                            ],
                        },
                        "Email": "jane@acme-e2e.com",
                        "IsConverted": True,
                        "Status": "Qualified",
                        "ConvertedAccountId": "001E2EACME00001I5A",
                        "ConvertedContactId": "003E2EJANE00001I5A",
                        "ConvertedOpportunityId": "006E2EOPP000001IPA",
                    },
                    "event": {"replayId": 7},
                },
                "channel": "/data/LeadChangeEvent",
            }
        ]
    ).encode()
    response = await system.ingest.post(
        "/webhooks/salesforce/events",
        content=conversion,
        headers=relay_headers("dev-salesforce-events-secret", conversion),
    )
    assert response.status_code == 200, response.text
    opened = (NOW + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    await post_outbound(
        system,
        "04lE2EOPP0001AAA",
        "Opportunity",
        {
            "Id": "006E2EOPP000001IPA",
            "AccountId": "001E2EACME00001I5A",
            "StageName": "1 - Interest",
            "Amount": "50000",
            "CloseDate": (NOW.date() + timedelta(days=60)).isoformat(),
            "OwnerId": "005E2EALEX",
            "CreatedDate": opened,
            "LastModifiedDate": opened,
        },
    )

    async def sourced():
        r = await system.attribution.get("/opportunities/006E2EOPP000001IPA/attribution")
        assert r.status_code == 200, r.text
        return r.json()

    metrics = (await system.router.get("/metrics")).text
    assert 'revops_events_applied_total{service="router",type="form.submitted"}' in metrics
    assert 'revops_events_deduplicated_total{service="router"' in metrics

    opportunity = await eventually(sourced, timeout_s=30)
    assert opportunity["opportunity_source"] == "Inbound"
    assert opportunity["source_rule"] == "converted_lead"
    assert opportunity["primary_campaign_id"] == "spring_launch"

    for step, stage in enumerate(["2 - Qualified", "Closed Won"], start=2):
        at = (NOW + timedelta(minutes=2 + step)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        won = str(stage == "Closed Won").lower()
        await post_outbound(
            system,
            f"04lE2EOPP000{step}AAA",
            "Opportunity",
            {
                "Id": "006E2EOPP000001IPA",
                "AccountId": "001E2EACME00001I5A",
                "StageName": stage,
                "Amount": "50000",
                "CloseDate": (NOW.date() + timedelta(days=60)).isoformat(),
                "OwnerId": "005E2EALEX",
                "CreatedDate": opened,
                "LastModifiedDate": at,
                "IsClosed": won,
                "IsWon": won,
                "Type": "New Business",
            },
        )

    async def renewed():
        r = await system.renewals.get("/opportunities/006E2EOPP000001IPA/renewal")
        assert r.status_code == 200, r.text
        return r.json()

    renewal = await eventually(renewed, timeout_s=30)
    assert renewal["source_opportunity_id"] == "006E2EOPP000001IPA"
    assert renewal["account_id"] == "001E2EACME00001I5A"
    assert renewal["owner_id"] == "005E2EALEX"
    history = (await system.renewals.get("/opportunities/006E2EOPP000001IPA")).json()
    assert [h["stage"] for h in history["history"]] == [
        "1 - Interest",
        "2 - Qualified",
        "Closed Won",
    ]
    assert history["qualified_date"] is not None


async def test_a_bad_signature_publishes_nothing_and_reads_need_a_token(system):
    url = "http://ingest/webhooks/hubspot/forms?form_type=demo_request"
    body = b'{"submittedAt": "1", "fields": [{"name": "email", "value": "eve@x.com"}]}'
    headers = hubspot_v3_headers("not-the-secret", url, body)
    response = await system.ingest.post(url, content=body, headers=headers)
    assert response.status_code == 401
    anonymous = await system.router.get("/leads", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    read_only = await system.router.post(
        "/reps",
        json={
            "id": "005E2EEVE",
            "name": "Eve",
            "email": "eve@x.com",
            "role": "SDR",
            "region": "AMER",
        },
        headers={"Authorization": "Bearer dev-read-token"},
    )
    assert read_only.status_code == 403
