"""Owner write-back from the outbox to HubSpot and Salesforce (a local server speaking
their formats): the reps' CRM ids, retries, 429 Retry-After, failures visible in the API,
a rep without a CRM id failing at once and requeued once it is set."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Row, select

from revops.events.catalogue import PersonChanged, PersonChangedEvent, make_event
from revops.events.outbox import OutboxMessage, RetryLater, Undeliverable, add_message
from revops.events.service import ServiceRuntime
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish, running_app
from revops.router import models as m
from revops.router.context import HUBSPOT_OWNER, SALESFORCE_OWNER
from revops.router.main import SPEC, build_app
from revops.router.settings import RouterSettings
from revops.router.writeback import (
    CrmIds,
    CrmWriteback,
    WritebackError,
)

from .conftest import ADMIN, router_settings
from .fake_crm import TOKEN, FakeCrm, running_fake_crm
from .rep_helpers import create_reps, patch_rep
from .router_events import T0, form, sf

pytestmark = pytest.mark.infra

OUTBOX = m.metadata.tables["router.outbox"]
# Each rep's users in the CRMs: never its id here.
CRM_IDS = {
    "005A": CrmIds(hubspot_owner_id="hs-owner-77", salesforce_user_id="005SFUSER0000077"),
    "sdr-hs-only": CrmIds(hubspot_owner_id="hs-owner-12"),
}


async def lookup(rep_id: str) -> CrmIds | None:
    return CRM_IDS.get(rep_id)


def message(object_id: str, owner: str = "005A") -> OutboxMessage:
    value = json.dumps({"object_type": "x", "object_id": object_id, "owner_id": owner}).encode()
    return OutboxMessage("e1", "d", "", "L1", value, 0)


def crm_settings(crm: FakeCrm) -> RouterSettings:
    return RouterSettings(
        hubspot_api_base=crm.url,
        hubspot_access_token=SecretStr(TOKEN),
        salesforce_instance_url=crm.url,
        salesforce_access_token=SecretStr(TOKEN),
    )


async def test_senders_speak_each_crm():
    async with running_fake_crm() as crm:
        settings = crm_settings(crm)
        writeback = CrmWriteback(settings, reps=lookup)
        try:
            crm.rate_limit_first.add("101")
            with pytest.raises(RetryLater) as limited:
                await writeback.hubspot_owner(message("101"))
            assert limited.value.after_s == 1.0
            await writeback.hubspot_owner(message("101"))
            assert crm.hubspot_owner == {"101": "hs-owner-77"}
            await writeback.salesforce_owner(message("00Q1"))
            assert crm.salesforce_owner == {"00Q1": "005SFUSER0000077"}
            crm.salesforce_missing.add("00Q404")
            with pytest.raises(WritebackError, match="404"):
                await writeback.salesforce_owner(message("00Q404"))
            bad = CrmWriteback(
                settings.model_copy(update={"hubspot_access_token": SecretStr("nope")}), reps=lookup
            )
            with pytest.raises(WritebackError, match="401"):
                await bad.hubspot_owner(message("102"))
            await bad.aclose()
        finally:
            await writeback.aclose()


async def test_a_503_is_later_only_when_it_says_when():
    async with running_fake_crm() as crm:
        writeback = CrmWriteback(crm_settings(crm), reps=lookup)
        try:
            crm.unavailable.update({"00Q503": "30", "00Q500": None})
            with pytest.raises(RetryLater) as later:
                await writeback.salesforce_owner(message("00Q503"))
            assert later.value.after_s == 30.0
            with pytest.raises(WritebackError, match="503"):  # counted like any outage
                await writeback.salesforce_owner(message("00Q500"))
        finally:
            await writeback.aclose()


async def test_a_rep_without_the_crm_id_is_refused_before_any_call():
    async with running_fake_crm() as crm:
        writeback = CrmWriteback(crm_settings(crm), reps=lookup)
        try:
            with pytest.raises(Undeliverable) as missing:
                await writeback.salesforce_owner(message("00Q2", owner="sdr-hs-only"))
            assert str(missing.value) == (
                "rep sdr-hs-only has no salesforce_user_id: set it with PATCH /reps/sdr-hs-only"
            )
            with pytest.raises(Undeliverable, match="rep ghost is unknown"):
                await writeback.hubspot_owner(message("103", owner="ghost"))
            await writeback.hubspot_owner(message("104", owner="sdr-hs-only"))
            assert crm.calls == [("hubspot", "104")]
            assert crm.hubspot_owner == {"104": "hs-owner-12"}
        finally:
            await writeback.aclose()


@asynccontextmanager
async def router_app(
    kafka_settings: KafkaSettings, crm: FakeCrm
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    settings = router_settings(
        kafka_settings,
        hubspot_api_base=crm.url,
        hubspot_access_token=TOKEN,
        salesforce_instance_url=crm.url,
        salesforce_access_token=TOKEN,
    )
    await fresh_schema(SPEC, settings.resolved_database_url())
    app = build_app(settings)
    async with running_app(app, base_url="http://router", headers=ADMIN) as client:
        yield client, app


async def add_rep(client: httpx.AsyncClient, rep_id: str, **crm_ids: str) -> None:
    rep = {"id": rep_id, "role": "SDR", "region": "AMER", "certified": True, **crm_ids}
    await create_reps(client, [rep])


async def test_routed_owner_is_written_back_through_the_outbox(kafka_settings: KafkaSettings):
    async with running_fake_crm() as crm, router_app(kafka_settings, crm) as (client, _):
        await add_rep(client, "005A", hubspot_owner_id="77", salesforce_user_id="005SF77")
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
            # The rep's user in each CRM, never our rep id.
            assert crm.hubspot_owner == {"hs-9": "77"}
            assert crm.salesforce_owner == {"00QSF": "005SF77"}

        await eventually(delivered, timeout_s=30)
        # The 429 was honoured: the contact was asked twice, a second apart.
        assert crm.calls.count(("hubspot", "hs-9")) == 2
        first, second = crm.call_times["hs-9"]
        assert second - first >= 0.9

        async def failure_visible():
            r = await client.get("/writebacks", params={"status": "all"})
            rows = {w["event_id"]: w for w in r.json()["items"]}
            gone = [w for w in rows.values() if w["last_error"] and "404" in w["last_error"]]
            assert len(gone) == 1 and gone[0]["sent_at"] is None
            sent = [w for w in rows.values() if w["sent_at"]]
            assert len(sent) == 2
            # The 429 was not a failure: one attempt, the one that succeeded.
            assert [w["attempts"] for w in sent] == [1, 1]

        await eventually(failure_visible, timeout_s=15)
        # Routing never waited for the CRM: the lead was routed all along.
        r = await client.get("/leads", params={"email": "gone@example.com"})
        assert r.json()["items"][0]["owner_id"] == "005A"


async def queue_owner_writeback(
    runtime: ServiceRuntime, event_id: str, destination: str, object_id: str, rep_id: str
) -> None:
    value = {"object_type": "contact", "object_id": object_id, "owner_id": rep_id}
    async with runtime.database.transaction() as session:
        await add_message(
            session,
            OUTBOX,
            event_id=event_id,
            destination=destination,
            key="lead-" + object_id,
            value=json.dumps(value).encode(),
        )
    runtime.relay.wake()


async def outbox_row(runtime: ServiceRuntime, event_id: str) -> Row[Any]:
    async with runtime.database.transaction() as session:
        return (await session.execute(select(OUTBOX).where(OUTBOX.c.event_id == event_id))).one()


async def test_a_rep_without_a_crm_id_fails_at_once_and_is_sent_once_set(
    kafka_settings: KafkaSettings,
):
    async with running_fake_crm() as crm, router_app(kafka_settings, crm) as (client, app):
        runtime: ServiceRuntime = app.state.runtime
        await add_rep(client, "sdr-1")
        await queue_owner_writeback(runtime, "wb-hs", HUBSPOT_OWNER, "hs-31", "sdr-1")
        await queue_owner_writeback(runtime, "wb-sf", SALESFORCE_OWNER, "00Q31", "sdr-1")
        await queue_owner_writeback(runtime, "wb-ghost", HUBSPOT_OWNER, "hs-32", "ghost")

        async def failed_at_once():
            r = await client.get("/writebacks", params={"status": "failed"})
            rows = {w["event_id"]: w for w in r.json()["items"]}
            assert set(rows) == {"wb-hs", "wb-sf", "wb-ghost"}
            return rows

        rows = await eventually(failed_at_once, timeout_s=15)
        # One attempt each, no retries used up, and the error says what to do.
        assert {w["attempts"] for w in rows.values()} == {1}
        assert rows["wb-hs"]["last_error"] == (
            "Undeliverable: rep sdr-1 has no hubspot_owner_id: set it with PATCH /reps/sdr-1"
        )
        assert "rep sdr-1 has no salesforce_user_id" in rows["wb-sf"]["last_error"]
        assert "rep ghost is unknown" in rows["wb-ghost"]["last_error"]
        assert crm.calls == []

        # The HubSpot owner is set later: applying that change puts the rep's failed rows
        # back in the queue, and they go with the id it has now.
        await patch_rep(client, "sdr-1", hubspot_owner_id="hs-owner-31")

        async def hubspot_sent():
            assert crm.hubspot_owner == {"hs-31": "hs-owner-31"}
            assert (await outbox_row(runtime, "wb-hs")).sent_at is not None
            row = await outbox_row(runtime, "wb-sf")  # still no Salesforce user: failed again
            assert row.failed_at is not None and row.attempts == 1

        await eventually(hubspot_sent, timeout_s=15)
        assert (await outbox_row(runtime, "wb-ghost")).failed_at is not None  # not the rep's
        assert crm.calls == [("hubspot", "hs-31")]

        # An unknown rep added with its CRM id: its write-backs go too.
        await add_rep(client, "ghost", hubspot_owner_id="hs-owner-32")

        async def ghost_sent():
            assert crm.hubspot_owner == {"hs-31": "hs-owner-31", "hs-32": "hs-owner-32"}
            assert (await outbox_row(runtime, "wb-ghost")).sent_at is not None

        await eventually(ghost_sent, timeout_s=15)


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
