"""A lead whose email's domain matches no account (personal mail, an unlisted domain) is
matched by the company it gave against account names, with the score recorded; below
the threshold, or after the account was renamed, it is not; the dry run says the same."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

from .rep_helpers import create_reps
from .router_events import T0, account

pytestmark = pytest.mark.infra

DAY = T0 + timedelta(days=50)


def lead_form(email: str, company: str, at: datetime) -> FormSubmittedEvent:
    return make_event(
        FormSubmittedEvent,
        id=f"company-form-{uuid.uuid4().hex}",
        source="hubspot",
        occurred_at=at,
        payload=FormSubmitted(email=email, company=company, country="DE", form_type="ebook"),
    )


async def routed(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    async def found() -> dict[str, Any]:
        r = await client.get("/leads", params={"email": email})
        assert r.status_code == 200 and r.json()["items"], r.text
        lead: dict[str, Any] = r.json()["items"][0]
        return lead

    return await eventually(found, timeout_s=60, interval_s=0.1)


def how(lead: dict[str, Any]) -> tuple[Any, ...]:
    return (lead["account_id"], lead["match"], lead["match_score"])


async def test_company_names_match_accounts_when_the_domain_does_not(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    await create_reps(
        client,
        [
            {"id": "N-AE", "role": "AE", "region": "AMER", "certified": True},
            {"id": "N-SDR", "role": "SDR", "region": "EMEA", "certified": True},
        ],
    )
    await publish(
        kafka_settings,
        [
            account("001GLX", "Globex Corporation", ["globex.example"], DAY, owner="N-AE"),
            account("001GM", "General Mills, Inc.", ["genmills.example"], DAY, owner="N-AE"),
        ],
    )
    # Sent after the accounts were acknowledged: they are applied before these leads.
    await publish(
        kafka_settings,
        [
            lead_form("ana@gmail.com", "Globex Corp.", DAY + timedelta(minutes=1)),
            lead_form("cy@unlisted-globex.io", "GLOBEX", DAY + timedelta(minutes=2)),
            lead_form("bob@gmail.com", "Globex Bank", DAY + timedelta(minutes=3)),
            lead_form("gil@gmail.com", "General Motors", DAY + timedelta(minutes=4)),
            lead_form("eve@globex.example", "Someone Else Ltd", DAY + timedelta(minutes=5)),
        ],
    )
    ana = await routed(client, "ana@gmail.com")
    assert how(ana) == ("001GLX", "company_name", 100.0)
    # An admin's assignment changes the owner, not how the lead matched its account.
    r = await client.post(
        f"/leads/{ana['id']}/assign", json={"owner_id": "N-SDR", "reason": "speaks her language"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["owner_id"] == "N-SDR"
    assert how(r.json()) == ("001GLX", "company_name", 100.0)
    assert how(await routed(client, "cy@unlisted-globex.io")) == (
        "001GLX",
        "company_name",
        100.0,
    )
    # Below the threshold: no account, and no score.
    assert how(await routed(client, "bob@gmail.com")) == (None, "none_free_mail", None)
    assert how(await routed(client, "gil@gmail.com")) == (None, "none_free_mail", None)
    # The domain comes first, whatever the company says.
    assert how(await routed(client, "eve@globex.example")) == ("001GLX", "exact_domain", None)

    asked = {"email": "dan@gmail.com", "company": "Globex, Inc.", "country": "DE"}
    dry = (await client.post("/routing-policy/dry-run", json=asked)).json()
    assert (dry["account_id"], dry["match"], dry["match_score"]) == (
        "001GLX",
        "company_name",
        100.0,
    )

    # Renamed: the old name matches no more, the new one does.
    await publish(
        kafka_settings,
        [account("001GLX", "Initrode", ["globex.example"], DAY + timedelta(hours=1))],
    )
    await publish(
        kafka_settings,
        [
            lead_form("fay@gmail.com", "Globex", DAY + timedelta(hours=2)),
            lead_form("gus@gmail.com", "Initrode GmbH", DAY + timedelta(hours=2, minutes=1)),
        ],
    )
    assert how(await routed(client, "fay@gmail.com")) == (None, "none_free_mail", None)
    assert how(await routed(client, "gus@gmail.com")) == ("001GLX", "company_name", 100.0)
