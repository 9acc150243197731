"""Every owner change reaches the CRM: a transfer writes back each moved lead's new owner,
a conversion the opportunity's AE (a Salesforce Opportunity, or the HubSpot deal when the
conversion came from HubSpot); each time the rep's user in that CRM."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from revops.events.catalogue import LeadConverted, LeadConvertedEvent, SourceRef, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish
from revops.router import models as m

from .fake_crm import running_fake_crm
from .rep_helpers import create_reps
from .router_events import T0, account, converted
from .test_writeback import router_app, sf_lead

pytestmark = pytest.mark.infra

REPS: list[dict[str, Any]] = [
    {
        "id": "S1",
        "role": "SDR",
        "region": "AMER",
        "certified": True,
        "salesforce_user_id": "005SFS1",
        "hubspot_owner_id": "hs-s1",
    },
    {
        "id": "S2",
        "role": "SDR",
        "region": "EMEA",
        "certified": True,
        "salesforce_user_id": "005SFS2",
        "hubspot_owner_id": "hs-s2",
    },
    {
        "id": "A1",
        "role": "AE",
        "region": "EMEA",
        "paired_sdr_id": "S1",
        "salesforce_user_id": "005SFA1",
    },
    {
        "id": "A2",
        "role": "AE",
        "region": "AMER",
        "certified": True,
        "paired_sdr_id": "S2",
        "salesforce_user_id": "005SFA2",
        "hubspot_owner_id": "hs-a2",
    },
]


def hubspot_conversion(email: str, account_id: str, deal_id: str, at) -> LeadConvertedEvent:
    return make_event(
        LeadConvertedEvent,
        id=f"hs-conv-{deal_id}",
        source="hubspot",
        occurred_at=at,
        payload=LeadConverted(
            lead_id="hs-901",
            account_id=account_id,
            opportunity_id=deal_id,
            email=email,
            source_ref=SourceRef(system="hubspot", object_type="contact", object_id="hs-901"),
        ),
    )


async def test_a_transfer_and_a_conversion_write_back_their_owners(
    kafka_settings: KafkaSettings,
):
    async with running_fake_crm() as crm, router_app(kafka_settings, crm) as (client, app):
        await create_reps(client, REPS)
        at = T0 + timedelta(days=20)
        # The account first: a CRM lead is routed as soon as it arrives.
        await publish(
            kafka_settings,
            [account("001WB", "Writeback Inc", ["writeback.example"], at, owner="A1")],
        )

        async def account_applied():
            async with app.state.runtime.database.transaction() as session:
                owner = await session.scalar(
                    select(m.accounts.c.owner_id).where(m.accounts.c.id == "001WB")
                )
            assert owner == "A1"

        await eventually(account_applied, timeout_s=30)
        await publish(
            kafka_settings,
            [
                sf_lead("moved@writeback.example", "00QMOVED", at + timedelta(minutes=1)),
                sf_lead("sold@writeback.example", "00QSOLD", at + timedelta(minutes=2)),
            ],
        )

        async def routed_to_s1():
            # The only AMER SDR in the rotation takes both.
            assert crm.salesforce_owner == {"00QMOVED": "005SFS1", "00QSOLD": "005SFS1"}

        await eventually(routed_to_s1, timeout_s=30)

        # The second lead converts (A2: the only certified AE in AMER's rotation), then the
        # account moves from A1 to A2: the open lead goes from S1 to S2, the converted
        # one stays.
        await publish(
            kafka_settings,
            [
                converted(
                    "00QSOLD", "sold@writeback.example", "001WB", "006SOLD", at + timedelta(hours=1)
                )
            ],
        )

        async def opportunity_owned():
            assert crm.salesforce_opportunity_owner == {"006SOLD": "005SFA2"}

        await eventually(opportunity_owned, timeout_s=30)
        await publish(
            kafka_settings,
            [
                account(
                    "001WB",
                    "Writeback Inc",
                    ["writeback.example"],
                    at + timedelta(hours=2),
                    owner="A2",
                )
            ],
        )

        async def moved_to_s2():
            assert crm.salesforce_owner == {"00QMOVED": "005SFS2", "00QSOLD": "005SFS1"}

        await eventually(moved_to_s2, timeout_s=30)
        r = await client.get("/leads", params={"email": "moved@writeback.example"})
        assert r.json()["items"][0]["owner_id"] == "S2"

        # A conversion from HubSpot: the deal's owner, nothing in Salesforce.
        await publish(
            kafka_settings,
            [
                hubspot_conversion(
                    "deal@writeback.example", "001WB", "hs-deal-7", at + timedelta(hours=3)
                )
            ],
        )

        async def deal_owned():
            assert crm.hubspot_deal_owner == {"hs-deal-7": "hs-a2"}

        await eventually(deal_owned, timeout_s=30)
        assert crm.salesforce_opportunity_owner == {"006SOLD": "005SFA2"}
        # Each owner change was sent once (no repeats of an earlier change).
        assert sorted(crm.calls) == sorted(
            [
                ("salesforce", "00QMOVED"),
                ("salesforce", "00QSOLD"),
                ("salesforce_opportunity", "006SOLD"),
                ("salesforce", "00QMOVED"),
                ("hubspot_deal", "hs-deal-7"),
            ]
        )
