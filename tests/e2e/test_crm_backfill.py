"""From an empty system to a real CRM's history: backfill Salesforce and HubSpot from
the local fakes of their APIs, then send webhooks. A lead matches a backfilled account
and goes to the owner of its open opportunity, backfilled too; the account's tier
fills from the backfilled size fields; the owner written back to HubSpot is the rep's
HubSpot owner id, kept from the roster sync; a second sync and a second backfill change
nothing anywhere.

Ingest, router and renewals run in this process (their real consumers and schemas) on
a topic prefix of this module's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from revops.events import admin, topics
from revops.events.senders import hubspot_v3_headers
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, service_settings
from revops.ingest.backfill.command import BackfillSettings, backfill
from revops.ingest.backfill.fake_crm import FakeOrg, serving, sfid
from revops.ingest.backfill.roster import (
    RosterSummary,
    RouterReps,
    export_csv,
    import_csv,
    sync_hubspot,
    sync_salesforce,
)
from revops.ingest.main import build_app as build_ingest
from revops.ingest.settings import IngestSettings
from revops.renewals.main import SPEC as RENEWALS_SPEC
from revops.renewals.main import build_app as build_renewals
from revops.renewals.settings import RenewalsSettings
from revops.router.main import SPEC as ROUTER_SPEC
from revops.router.main import build_app as build_router
from revops.router.settings import RouterSettings

pytestmark = pytest.mark.infra

ADMIN = {"Authorization": "Bearer dev-admin-token"}
NOW = datetime.now(UTC).replace(microsecond=0)
CRM_TOPICS = (topics.ACCOUNTS, topics.PEOPLE, topics.OPPORTUNITIES, topics.ACTIVITIES)
OBJECTS = ("accounts", "contacts", "opportunities", "activities")
# Account 6 of the fake org: its opportunity 6 is open ("Proposal"), owned by user 1,
# an SDR in Salesforce (Sales_Role__c) who touched none of its records.
ACCOUNT = sfid("001", 6)
OWNER = sfid("005", 1)
HUBSPOT_OWNER = "101"  # the same rep's HubSpot owner id


@dataclass
class System:
    ingest: httpx.AsyncClient
    router: httpx.AsyncClient
    renewals: httpx.AsyncClient
    org: FakeOrg
    backfill_settings: BackfillSettings
    prefix: str


@pytest.fixture(scope="module")
async def system(kafka_settings: KafkaSettings, tmp_path_factory: Any) -> AsyncIterator[System]:
    prefix = kafka_settings.topic_prefix
    async with AsyncExitStack() as stack:
        org = await stack.enter_async_context(
            serving(FakeOrg(accounts=12, contacts_per_account=2, activities=4, users=3))
        )
        router_settings = service_settings(
            RouterSettings,
            "router",
            prefix,
            hubspot_api_base=org.url,
            hubspot_access_token=SecretStr(org.hubspot_token),
        )
        renewals_settings = service_settings(RenewalsSettings, "renewals", prefix)
        await fresh_schema(ROUTER_SPEC, router_settings.resolved_database_url())
        await fresh_schema(RENEWALS_SPEC, renewals_settings.resolved_database_url())
        apps = {
            "ingest": build_ingest(IngestSettings(topic_prefix=prefix)),
            "router": build_router(router_settings),
            "renewals": build_renewals(renewals_settings),
        }
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(LifespanManager(app, startup_timeout=60))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=f"http://{name}", headers=ADMIN
                )
            )
        settings = BackfillSettings(
            kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
            topic_prefix=prefix,
            salesforce_login_url=org.url,
            salesforce_client_id=org.client_id,
            salesforce_client_secret=SecretStr(org.client_secret),
            hubspot_api_base=org.url,
            hubspot_access_token=SecretStr(org.hubspot_token),
            backfill_state_file=Path(tmp_path_factory.mktemp("backfill")) / "checkpoints.json",
        )
        yield System(**clients, org=org, backfill_settings=settings, prefix=prefix)


async def all_consumed(system: System) -> None:
    """Every service has applied everything on the CRM topics it reads."""
    for spec in (ROUTER_SPEC, RENEWALS_SPEC):
        names = [t.name(system.prefix) for t in spec.topics if t in CRM_TOPICS]
        lags = await admin.group_lag(
            KafkaSettings().kafka_bootstrap_servers, f"{system.prefix}{spec.name}", names
        )
        assert lags and sum(p.lag for p in lags) == 0, (spec.name, lags)


async def backfill_both(system: System) -> None:
    for crm in ("salesforce", "hubspot"):
        summary = await backfill(crm, system.backfill_settings, objects=OBJECTS)
        assert summary.complete and summary.bad == 0, summary


async def sync_reps(reps: RouterReps, system: System, crm: str) -> RosterSummary:
    settings = system.backfill_settings
    if crm == "salesforce":
        return await sync_salesforce(reps, settings, settings.user_fields(), asyncio.sleep)
    return await sync_hubspot(reps, settings, asyncio.sleep)


async def hubspot_webhook(system: System, url: str, body: Any) -> None:
    raw = json.dumps(body).encode()
    response = await system.ingest.post(
        url,
        content=raw,
        headers=hubspot_v3_headers("dev-hubspot-secret", f"http://ingest{url}", raw),
    )
    assert response.status_code == 200, response.text


async def snapshot(system: System) -> dict[str, Any]:
    """What a second backfill must leave as it is."""
    tier = (await system.renewals.get(f"/accounts/{ACCOUNT}/tier")).json()
    leads = (
        await system.router.get("/leads", params={"email": "buyer@account6.example.com"})
    ).json()["items"]
    return {"tier": tier, "leads": leads, "written": dict(system.org.owners_written)}


async def roster_file_round_trip(reps: RouterReps, system: System, tmp_path: Path) -> None:
    """A rep kept in a spreadsheet: imported once (a second import changes nothing),
    then exported with the synced ones."""
    sheet = tmp_path / "reps.csv"
    sheet.write_text("id,name,role,region,weight\nsheet-ae-1,Kim,ae,AMER,0\n")
    imported = await import_csv(reps, sheet)
    assert imported.created == ["sheet-ae-1"] and not imported.refused, imported

    async def four_reps() -> None:
        assert len((await system.router.get("/reps")).json()["items"]) == 4

    await eventually(four_reps, timeout_s=30)
    assert (await import_csv(reps, sheet)).unchanged == 1
    exported = tmp_path / "export.csv"
    assert await export_csv(reps, exported) == 4
    rows = exported.read_text().splitlines()
    assert rows[0].startswith("id,name,email,role,region")
    assert rows[-1].startswith("sheet-ae-1,Kim,,AE,AMER,false,false,true,false,false,0,")


async def test_backfilled_crm_state_reaches_every_rule_and_a_second_run_changes_nothing(
    system: System, tmp_path: Path
) -> None:
    # The roster from Salesforce's users (the role field says SDR or AE), then each
    # rep's HubSpot owner id from the owner with its email.
    reps = RouterReps(system.router)
    synced = await sync_reps(reps, system, "salesforce")
    assert sorted(synced.created) == [sfid("005", i) for i in (1, 2, 3)], synced

    async def reps_applied() -> None:
        assert len((await system.router.get("/reps")).json()["items"]) == 3

    await eventually(reps_applied, timeout_s=30)
    owners = await sync_reps(reps, system, "hubspot")
    assert len(owners.updated) == 3 and not owners.unmatched, owners

    async def owner_ids_applied() -> dict[str, Any]:
        rep = (await system.router.get(f"/reps/{OWNER}")).json()
        assert rep["hubspot_owner_id"] == HUBSPOT_OWNER, rep
        return dict(rep)

    rep = await eventually(owner_ids_applied, timeout_s=30)
    assert (rep["role"], rep["salesforce_user_id"], rep["email"]) == (
        "SDR",
        OWNER,
        "rep1@seller.example.com",
    )
    again = await sync_reps(reps, system, "salesforce")
    assert (again.created, again.updated, again.unchanged) == ([], [], 3)
    await roster_file_round_trip(reps, system, tmp_path)

    await backfill_both(system)
    await eventually(lambda: all_consumed(system), timeout_s=60)

    async def tier() -> dict[str, Any]:
        response = await system.renewals.get(f"/accounts/{ACCOUNT}/tier")
        assert response.status_code == 200, response.text
        return dict(response.json())

    sized = await eventually(tier, timeout_s=30)
    assert (sized["users"], sized["plan"]) == (16, "Enterprise")
    assert sized["tier"] is not None

    form = {
        "submittedAt": str(int(NOW.timestamp() * 1000)),
        "fields": [
            {"objectTypeId": "0-1", "name": "email", "value": "buyer@account6.example.com"},
            {"objectTypeId": "0-1", "name": "country", "value": "US"},
        ],
        "context": {"pageUri": "https://www.example.com/demo"},
    }
    await hubspot_webhook(system, "/webhooks/hubspot/forms?form_type=demo_request", form)

    async def routed() -> dict[str, Any]:
        leads = (
            await system.router.get("/leads", params={"email": "buyer@account6.example.com"})
        ).json()["items"]
        assert len(leads) == 1, leads
        return dict(leads[0])

    lead = await eventually(routed, timeout_s=30)
    assert lead["account_id"] == ACCOUNT  # matched on the backfilled account's web site
    assert (lead["rule"], lead["owner_id"]) == ("open_opportunity", OWNER)

    # HubSpot makes a contact of the form: the router learns its id and writes the
    # owner back there, as the rep's HubSpot owner id.
    contact = {
        "eventId": 1,
        "subscriptionId": 7,
        "portalId": 99,
        "occurredAt": int(NOW.timestamp() * 1000) + 1000,
        "subscriptionType": "contact.propertyChange",
        "propertyName": "email",
        "propertyValue": "buyer@account6.example.com",
        "objectId": 9001,
        "attemptNumber": 0,
    }
    await hubspot_webhook(system, "/webhooks/hubspot", [contact])

    async def written_back() -> None:
        assert system.org.owners_written.get(("contacts", "9001")) == HUBSPOT_OWNER

    await eventually(written_back, timeout_s=30)
    before = await snapshot(system)

    await backfill_both(system)
    await eventually(lambda: all_consumed(system), timeout_s=60)
    after = await snapshot(system)
    assert after == before
