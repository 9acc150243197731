"""Routing policies are state: a change made through the API applies to the next lead
sent after its answer (no waiting), an invalid one changes nothing, the dry run answers
what the real routing then decides, and a reset rebuilds the policy and the decisions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import (
    eventually,
    fresh_schema,
    publish,
)
from revops.router import models as m
from revops.router.main import SPEC
from revops.router.settings import RouterSettings

from .conftest import reset_router, router_settings, running_router
from .rep_helpers import create_reps
from .router_events import T0

pytestmark = pytest.mark.infra

DAY = T0 + timedelta(days=40)

POLICY = """\
territories:
  - name: us-west-enterprise
    region: APAC
    match:
      countries: [US]
      states: [CA, WA]
      employees: {min: 1000}
  - name: us-to-emea
    region: EMEA
    match:
      countries: [United States]
"""

BAD_POLICY = """\
territories:
  - name: ok
    region: AMER
  - name: broken
    region: MARS
    match:
      countries: [Narnia]
"""


def lead_form(email: str, at: datetime, **fields: Any) -> FormSubmittedEvent:
    return make_event(
        FormSubmittedEvent,
        id=f"policy-form-{uuid.uuid4().hex}",
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(email=email, form_type="ebook", **{"country": "US", **fields}),
    )


async def routed(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    async def found() -> dict[str, Any]:
        r = await client.get("/leads", params={"limit": 500})
        leads: dict[str, dict[str, Any]] = {lead["email"]: lead for lead in r.json()["items"]}
        assert email in leads
        return leads[email]

    return await eventually(found, timeout_s=60, interval_s=0.1)


async def stored_leads(settings: RouterSettings) -> dict[str, tuple[Any, ...]]:
    engine = create_async_engine(settings.resolved_database_url())
    columns = ("email", "owner_id", "rule", "queue", "turn", "territory", "policy_version")
    async with engine.connect() as conn:
        rows = await conn.execute(select(*(m.leads.c[c] for c in columns)))
        leads = {r.email: tuple(r)[1:] for r in rows}
    await engine.dispose()
    return leads


SAME_AS_DRY_RUN = ("owner_id", "rule", "queue", "turn", "territory", "policy_version", "region")


async def test_a_policy_change_routes_the_next_lead_and_a_reset_rebuilds_it(
    own_topics: KafkaSettings,
) -> None:
    kafka_settings = own_topics
    settings = router_settings(kafka_settings)
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_router(settings) as client:
        await create_reps(
            client,
            [
                {"id": f"P-{region}", "role": "SDR", "region": region, "certified": True}
                for region in ("AMER", "EMEA", "APAC")
            ],
        )
        # The configuration's policy (version 0): the regions by country.
        await publish(kafka_settings, [lead_form("first@a-corp.com", DAY)])
        first = await routed(client, "first@a-corp.com")
        assert (first["owner_id"], first["territory"], first["policy_version"]) == (
            "P-AMER",
            "AMER",
            0,
        )

        r = await client.put("/routing-policy", json={"document": POLICY, "changed_by": "ops"})
        assert r.status_code == 202, r.text
        assert r.json() == {
            "territories": ["us-west-enterprise", "us-to-emea"],
            "version_after": 1,
        }
        # Sent at once: the change was acknowledged first, so it is applied first.
        await publish(
            kafka_settings,
            [
                lead_form("second@b-corp.com", DAY + timedelta(minutes=1)),
                lead_form(
                    "third@c-corp.com", DAY + timedelta(minutes=2), state="CA", employees=5000
                ),
            ],
        )
        second = await routed(client, "second@b-corp.com")
        assert (second["owner_id"], second["queue"], second["territory"]) == (
            "P-EMEA",
            "inbound-EMEA",
            "us-to-emea",
        )
        third = await routed(client, "third@c-corp.com")
        assert (third["owner_id"], third["territory"], third["policy_version"]) == (
            "P-APAC",
            "us-west-enterprise",
            1,
        )

        # Refused as a whole, every error named; the policy in force stays.
        r = await client.put("/routing-policy", json={"document": BAD_POLICY})
        assert r.status_code == 422, r.text
        errors = [(e["line"], e["field"]) for e in r.json()["detail"]]
        assert errors == [(5, "territories[1].region"), (7, "territories[1].match.countries")]
        policy = (await client.get("/routing-policy")).json()
        assert (policy["version"], policy["document"], policy["changed_by"]) == (
            1,
            POLICY.strip(),
            "ops",
        )

        # The dry run answers what the real routing then decides, and takes no turn.
        at = DAY + timedelta(minutes=3)
        asked = {"email": "fourth@d-corp.com", "country": "USA", "at": at.isoformat()}
        dry = (await client.post("/routing-policy/dry-run", json=asked)).json()
        again = (await client.post("/routing-policy/dry-run", json=asked)).json()
        assert dry == again
        assert (dry["territory"], dry["known_lead"]) == ("us-to-emea", False)
        await publish(kafka_settings, [lead_form("fourth@d-corp.com", at, country="USA")])
        fourth = await routed(client, "fourth@d-corp.com")
        assert {k: fourth[k] for k in SAME_AS_DRY_RUN} == {k: dry[k] for k in SAME_AS_DRY_RUN}
    before = await stored_leads(settings)
    assert len(before) == 4

    # Stopped; the schema emptied and the group rewound, as `revops reset router` does.
    await reset_router(settings)
    async with running_router(settings) as client:
        for email in before:
            await routed(client, email)

        async def policy_back() -> None:
            policy = (await client.get("/routing-policy")).json()
            assert (policy["version"], policy["document"]) == (1, POLICY.strip())

        await eventually(policy_back, timeout_s=30)
        dry = await client.post(
            "/routing-policy/dry-run", json={"email": "fifth@e-corp.com", "country": "US"}
        )
        assert dry.json()["territory"] == "us-to-emea"
    assert await stored_leads(settings) == before
