"""Owner write-back from the outbox to HubSpot and Salesforce (a local server speaking
their formats): retries, 429 Retry-After, failures visible in the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fake_crm import TOKEN, running_fake_crm
from pydantic import SecretStr
from rep_helpers import create_reps
from router_events import T0, form, sf

from conftest import ADMIN, router_settings
from revops.events.catalogue import PersonChanged, PersonChangedEvent, make_event
from revops.events.outbox import OutboxMessage, RetryLater
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings
from revops.router.writeback import CrmWriteback, WritebackError, retry_after_s

pytestmark = pytest.mark.infra


def message(object_id: str, owner: str = "005A") -> OutboxMessage:
    value = json.dumps({"object_type": "x", "object_id": object_id, "owner_id": owner}).encode()
    return OutboxMessage("e1", "d", "", "L1", value, 0)


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert retry_after_s("7") == 7.0
    assert retry_after_s("Mon, 02 Mar 2026 09:00:30 GMT", now) == 30.0
    assert retry_after_s("garbage") is None
    assert retry_after_s(None) is None


async def test_senders_speak_each_crm():
    async with running_fake_crm() as crm:
        settings = RouterSettings(
            hubspot_api_base=crm.url,
            hubspot_token=SecretStr(TOKEN),
            salesforce_instance_url=crm.url,
            salesforce_token=SecretStr(TOKEN),
        )
        writeback = CrmWriteback(settings)
        try:
            crm.rate_limit_first.add("101")
            with pytest.raises(RetryLater) as limited:
                await writeback.hubspot_owner(message("101"))
            assert limited.value.after_s == 1.0
            await writeback.hubspot_owner(message("101"))
            assert crm.hubspot_owner == {"101": "005A"}
            await writeback.salesforce_owner(message("00Q1", "005B"))
            assert crm.salesforce_owner == {"00Q1": "005B"}
            crm.salesforce_missing.add("00Q404")
            with pytest.raises(WritebackError, match="404"):
                await writeback.salesforce_owner(message("00Q404"))
            bad = CrmWriteback(settings.model_copy(update={"hubspot_token": SecretStr("nope")}))
            with pytest.raises(WritebackError, match="401"):
                await bad.hubspot_owner(message("102"))
            await bad.aclose()
        finally:
            await writeback.aclose()


async def test_routed_owner_is_written_back_through_the_outbox(kafka_settings: KafkaSettings):
    async with running_fake_crm() as crm:
        settings = router_settings(
            kafka_settings,
            hubspot_api_base=crm.url,
            hubspot_token=TOKEN,
            salesforce_instance_url=crm.url,
            salesforce_token=TOKEN,
        )
        await fresh_schema(SPEC, settings.resolved_database_url())
        app = build_app(settings)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://r", headers=ADMIN
            ) as client:
                rep = {"id": "005A", "role": "SDR", "region": "AMER", "certified": True}
                await create_reps(client, [rep])
                crm.rate_limit_first.add("hs-9")
                crm.salesforce_missing.add("00QGONE")
                at = T0 + timedelta(days=5)
                await publish(
                    kafka_settings,
                    [
                        form("wb@example.com", at, hubspot_id="hs-9"),
                        sf_lead("sf@example.com", "00QSF", at),
                        sf_lead("gone@example.com", "00QGONE", at),
                    ],
                )

                async def delivered():
                    assert crm.hubspot_owner == {"hs-9": "005A"}
                    assert crm.salesforce_owner == {"00QSF": "005A"}

                await eventually(delivered, timeout_s=30)
                # The 429 was honoured: the contact was asked twice, a second apart.
                assert crm.calls.count(("hubspot", "hs-9")) == 2

                async def failure_visible():
                    r = await client.get("/writebacks", params={"status": "all"})
                    rows = {w["event_id"]: w for w in r.json()}
                    gone = [
                        w for w in rows.values() if w["last_error"] and "404" in w["last_error"]
                    ]
                    assert len(gone) == 1 and gone[0]["sent_at"] is None
                    sent = [w for w in rows.values() if w["sent_at"]]
                    assert len(sent) == 2

                await eventually(failure_visible, timeout_s=15)
                # Routing never waited for the CRM: the lead was routed all along.
                r = await client.get("/leads", params={"email": "gone@example.com"})
                assert r.json()[0]["owner_id"] == "005A"


def sf_lead(email: str, lead_id: str, at: datetime) -> PersonChangedEvent:
    return make_event(
        PersonChangedEvent,
        id=f"sf-{lead_id}",
        source="salesforce",
        occurred_at=at,
        payload=PersonChanged(
            person_type="lead",
            change="created",
            email=email,
            status="New",
            country="US",
            source_ref=sf("Lead", lead_id),
            created_at=at,
        ),
    )
