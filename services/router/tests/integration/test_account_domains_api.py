"""An account's domains edited through the API: refusals named, an added domain matches the
next lead, a removed one no more; the CRM's newer change of the domains wins and an older
one does not; a reset rebuilds the same domains."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import reset_router, router_settings, running_router
from .router_events import account

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC)
DOMAINS = "/accounts/ACC1/domains"


def lead_form(email: str) -> FormSubmittedEvent:
    return make_event(
        FormSubmittedEvent,
        id=f"domains-form-{uuid.uuid4().hex}",
        source="hubspot",
        occurred_at=datetime.now(UTC),
        payload=FormSubmitted(email=email, form_type="ebook", country="US"),
    )


async def domains_are(client: httpx.AsyncClient, expected: list[str]) -> None:
    async def shown() -> None:
        r = await client.get(DOMAINS)
        assert r.status_code == 200, r.text
        assert r.json() == {"account_id": "ACC1", "domains": expected}

    await eventually(shown, timeout_s=30, interval_s=0.1)


async def account_of(client: httpx.AsyncClient, email: str) -> Any:
    async def routed() -> Any:
        r = await client.get("/leads", params={"email": email})
        leads = r.json()["items"]
        assert len(leads) == 1, leads
        return leads[0]["account_id"]

    return await eventually(routed, timeout_s=30, interval_s=0.1)


async def test_domains_added_and_removed_through_the_api_match_the_next_lead(
    own_topics: KafkaSettings,
) -> None:
    settings = router_settings(own_topics)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_router(settings) as client:
        assert (await client.get(DOMAINS)).status_code == 404
        await publish(own_topics, [account("ACC1", "Acme", ["acme.com"], NOW - timedelta(days=1))])
        await domains_are(client, ["acme.com"])

        async with httpx.AsyncClient(transport=client._transport, base_url="http://router") as anon:
            assert (await anon.post(DOMAINS, json={"domains": ["acme.io"]})).status_code == 401
        for bad, says in (("not a host", "is not a host name"), ("GMAIL.com", "free-mail")):
            r = await client.post(DOMAINS, json={"domains": ["acme.io", bad]})
            assert r.status_code == 422, r.text
            [error] = r.json()["detail"]
            assert error["loc"] == ["body", "domains[1]"] and says in error["msg"], error
        r = await client.post(DOMAINS, json={"domains": ["acme.com"], "extra": 1})
        assert r.status_code == 422 and "extra" in r.text
        assert (await client.delete(f"{DOMAINS}/acme.io")).status_code == 404
        assert (
            await client.post("/accounts/NOPE/domains", json={"domains": ["a.io"]})
        ).status_code == 404
        assert (await client.get(DOMAINS)).json()["domains"] == ["acme.com"]  # nothing changed

        r = await client.post(
            DOMAINS,
            json={"domains": ["https://www.Acme.io/about", "acme.com"], "changed_by": "ops"},
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"account_id": "ACC1", "domains": ["acme.com", "acme.io"]}
        await domains_are(client, ["acme.com", "acme.io"])
        await publish(own_topics, [lead_form("ana@acme.io")])
        assert await account_of(client, "ana@acme.io") == "ACC1"

        r = await client.delete(f"{DOMAINS}/acme.io")
        assert r.status_code == 202, r.text
        assert r.json()["domains"] == ["acme.com"]
        await domains_are(client, ["acme.com"])
        await publish(own_topics, [lead_form("bo@acme.io")])
        assert await account_of(client, "bo@acme.io") is None

        # The CRM's domains: an older change than the admin's edit loses, a newer one wins.
        await publish(
            own_topics, [account("ACC1", "Acme", ["old-acme.com"], NOW - timedelta(hours=1))]
        )
        await publish(own_topics, [account("ACC1", "Acme Inc", [], NOW - timedelta(minutes=30))])
        await eventually(lambda: _named(settings, "Acme Inc"), timeout_s=30, interval_s=0.1)
        assert (await client.get(DOMAINS)).json()["domains"] == ["acme.com"]
        later = datetime.now(UTC) + timedelta(minutes=1)
        await publish(own_topics, [account("ACC1", "Acme", ["acme.net"], later)])
        await domains_are(client, ["acme.net"])

    await reset_router(settings)
    async with running_router(settings) as client:
        # Every edit replayed, in whatever order the topics give them: the same list.
        await domains_are(client, ["acme.net"])
        await eventually(lambda: _named(settings, "Acme"), timeout_s=30, interval_s=0.1)


async def _named(settings: RouterSettings, name: str) -> None:
    engine = create_async_engine(settings.resolved_database_url())
    async with engine.connect() as conn:
        stored = await conn.scalar(select(m.accounts.c.name).where(m.accounts.c.id == "ACC1"))
    await engine.dispose()
    assert stored == name
