"""The renewal created in Salesforce (REST upsert by External ID) from the outbox, against
a local server speaking Salesforce's format: 429 Retry-After, 503, errors, no duplicates."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from revops.events.outbox import RetryLater
from revops.events.testing import eventually, fresh_schema
from revops.renewals.domain.renewals import renewal_id_for
from revops.renewals.main import SPEC, build_app
from revops.renewals.salesforce import SalesforceError, SalesforceRenewals
from revops.renewals.settings import RenewalsSettings

from .conftest import ADMIN, publish, renewals_settings
from .fake_salesforce import TOKEN, FakeSalesforce, running
from .renewals_events import opportunity

T = datetime(2026, 5, 4, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
async def fake():
    async with running(FakeSalesforce()) as server:
        yield server


@pytest.fixture(scope="module")
async def client(kafka_settings, fake):
    settings = renewals_settings(
        kafka_settings,
        salesforce_instance_url=fake.url,
        salesforce_access_token=TOKEN,
    )
    await fresh_schema(SPEC, settings.resolved_database_url())
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r", headers=ADMIN) as c:
            yield c


async def test_won_creates_the_renewal_in_salesforce_once_after_a_429(client, kafka_settings, fake):
    opp = "006SFWON1"
    key = renewal_id_for(opp)
    fake.throttle[key] = 1
    await publish(
        kafka_settings,
        [
            opportunity(
                "sf1",
                T,
                opp,
                stage="Closed Won",
                amount="2400",
                owner_id="005X",
                change="created",
                close_date=date(2026, 5, 4),
                name="Globex",
            ),
            opportunity("sf1b", T, opp, stage="Closed Won"),  # the same win again
        ],
    )

    async def synced() -> dict[str, Any]:
        doc: dict[str, Any] = (await client.get(f"/opportunities/{opp}/renewal")).json()
        assert doc.get("crm_opportunity_id"), doc
        return doc

    started = time.monotonic()
    doc = await eventually(synced, timeout_s=30)
    assert time.monotonic() - started >= 0.9  # it waited for Retry-After
    record = fake.records[key]
    assert doc["crm_opportunity_id"] == record["Id"]
    assert record["StageName"] == "Prospecting" and record["Type"] == "Renewal"
    assert (record["AccountId"], record["OwnerId"], record["CloseDate"]) == (
        "001ACME",
        "005X",
        "2027-05-04",
    )
    assert record["Pipeline__c"] == "Renewals" and record["Amount"] == 2400
    assert [status for k, status in fake.calls if k == key] == [429, 201]

    # Reopened: the same Salesforce record is closed, no second one appears.
    await publish(
        kafka_settings, [opportunity("sf2", T.replace(hour=18), opp, stage="3 - Proposal")]
    )

    async def closed() -> None:
        assert fake.records[key]["StageName"] == "Closed Lost"

    await eventually(closed, timeout_s=30)
    assert len([k for k in fake.records if k == key]) == 1
    assert [status for k, status in fake.calls if k == key] == [429, 201, 200]


def renewal_row(key: str) -> SimpleNamespace:
    return SimpleNamespace(
        renewal_id=key,
        name="N",
        account_id="001",
        owner_id="005",
        amount=None,
        close_date=date(2027, 1, 1),
        status="open",
        opportunity_type="Renewal",
        pipeline="Renewals",
    )


async def sender(fake: FakeSalesforce, **overrides) -> SalesforceRenewals:
    settings = RenewalsSettings(
        salesforce_instance_url=fake.url,
        salesforce_access_token=SecretStr(overrides.get("token", TOKEN)),
        salesforce_api_version="v60.0",
        salesforce_renewal_key_field="Renewal_Key__c",
        salesforce_tries=3,
        salesforce_timeout_s=5,
    )
    return SalesforceRenewals(settings, database=None, backoff_s=0.01)  # type: ignore[arg-type]


async def test_503_is_retried_with_backoff_then_succeeds(fake):
    client = await sender(fake)
    fake.unavailable["k503"] = 2
    crm_id = await client.upsert("k503", {"Name": "N", "CloseDate": "2027-01-01"})
    assert crm_id == fake.records["k503"]["Id"]
    assert [s for k, s in fake.calls if k == "k503"] == [503, 503, 201]
    await client.aclose()


async def test_429_hands_the_wait_to_the_outbox(fake):
    client = await sender(fake)
    fake.throttle["k429"] = 5
    with pytest.raises(RetryLater) as caught:
        await client.upsert("k429", {"Name": "N", "CloseDate": "2027-01-01"})
    assert caught.value.after_s == 1
    await client.aclose()


async def test_errors_that_retrying_cannot_fix_are_raised_at_once(fake):
    client = await sender(fake)
    with pytest.raises(SalesforceError, match="REQUIRED_FIELD_MISSING"):
        await client.upsert("k400", {"Name": "N"})
    assert [s for k, s in fake.calls if k == "k400"] == [400]
    bad = await sender(fake, token="expired")
    with pytest.raises(SalesforceError, match="INVALID_SESSION_ID"):
        await bad.upsert("k401", {"Name": "N", "CloseDate": "2027-01-01"})
    await client.aclose()
    await bad.aclose()
