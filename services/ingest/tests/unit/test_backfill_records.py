"""A listed record gives the events its webhook gives (the same readers, the same
fields), with an id of its own that the same listing always gives again; the account
fields a tier needs are read on both CRMs; Salesforce ids reach every event in their
18-character form; HubSpot's per-10-second limit is kept."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from revops.events.catalogue import AccountChangedEvent, OpportunityChangedEvent
from revops.events.senders import outbound_message
from revops.ingest.backfill.calls import RateWindow
from revops.ingest.domain import hubspot, salesforce
from revops.ingest.domain.errors import MalformedEvent

ORG = "00D000000000001AAA"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACCOUNT = {
    "Id": "001000000000007AAA",
    "Name": "Acme",
    "Website": "https://www.acme.example.com/about",
    "OwnerId": "005000000000002AAA",
    "BillingCountry": "Germany",
    "Region__c": "EMEA",
    "Users__c": "250",
    "Plan__c": "Enterprise",
    "iACV__c": "48000.00",
    "CreatedDate": "2025-01-01T00:00:00.000Z",
    "LastModifiedDate": "2025-03-01T10:00:00.000Z",
    "SystemModstamp": "2025-03-01T10:00:00.000Z",
}


def listed(object_type: str, fields: dict[str, Any], index: int = 0) -> list[Any]:
    return salesforce.listed_record_events(
        object_type,
        {"attributes": {"type": object_type}, **fields},
        org_id=ORG,
        received_at=NOW,
        index=index,
        custom=salesforce.CustomFields(),
    )


def outbound(object_type: str, fields: dict[str, str]) -> list[Any]:
    body = outbound_message(ORG, [("04l000000000001AAA", object_type, fields)])
    return salesforce.parse_outbound(
        body, allowed_orgs=[ORG], custom=salesforce.CustomFields(), received_at=NOW
    ).events


def test_a_listed_account_is_the_outbound_messages_account() -> None:
    (from_list,) = listed("Account", ACCOUNT)
    (from_webhook,) = outbound("Account", ACCOUNT)
    assert from_list.payload == from_webhook.payload
    assert from_list.occurred_at == from_webhook.occurred_at
    assert from_list.id != from_webhook.id  # each path names its own facts
    assert from_list.payload.users == 250
    assert from_list.payload.plan == "Enterprise"
    assert from_list.payload.iacv == Decimal("48000.00")
    assert from_list.payload.domains == ["acme.example.com"]


def test_a_listing_gives_the_same_event_id_until_the_record_changes() -> None:
    (first,) = listed("Account", ACCOUNT)
    (again,) = listed("Account", ACCOUNT, index=5)
    (changed,) = listed("Account", {**ACCOUNT, "SystemModstamp": "2025-03-02T00:00:00.000Z"})
    assert first.id == again.id
    assert changed.id != first.id


def test_an_account_without_the_tier_fields_still_publishes() -> None:
    bare = {k: v for k, v in ACCOUNT.items() if not k.endswith("__c")}
    (event,) = listed("Account", bare)
    assert (event.payload.users, event.payload.plan, event.payload.iacv) == (None, None, None)


def test_seats_that_are_not_a_whole_number_are_refused_naming_the_field() -> None:
    with pytest.raises(MalformedEvent, match=r"Users__c.*whole number"):
        listed("Account", {**ACCOUNT, "Users__c": "12.5"})


def test_15_character_ids_become_18_characters_in_every_event() -> None:
    contact = {
        "Id": "003A0000006Vm9r",
        "Email": "ann@acme.example.com",
        "AccountId": "001A0000006Vm9r",
        "OwnerId": "005A0000006Vm9r",
        "LastModifiedDate": "2025-03-01T10:00:00.000Z",
    }
    (event,) = outbound("Contact", contact)
    assert event.payload.source_ref.object_id == "003A0000006Vm9rIAC"
    assert event.payload.account_id == "001A0000006Vm9rIAC"
    assert event.payload.owner_id == "005A0000006Vm9rIAC"


def test_opportunity_history_is_the_opportunitys_stage_at_that_time() -> None:
    row = {
        "Id": "008000000000001AAA",
        "OpportunityId": "006000000000001AAA",
        "Opportunity": {"attributes": {"type": "Opportunity"}, "AccountId": "001000000000001AAA"},
        "StageName": "Qualification",
        "CreatedDate": "2025-02-01T09:00:00.000+0000",
        "SystemModstamp": "2025-02-01T09:00:00.000+0000",
    }
    (event,) = listed("OpportunityHistory", row)
    assert event.type == "opportunity.changed"
    assert event.payload.opportunity_id == "006000000000001AAA"
    assert event.payload.account_id == "001000000000001AAA"
    assert event.payload.stage == "Qualification"
    assert event.payload.amount is None  # not sent: nothing to merge over
    assert event.occurred_at == datetime(2025, 2, 1, 9, tzinfo=UTC)


COMPANY = {
    "id": "512",
    "properties": {
        "name": "Globex",
        "domain": "globex.example.net",
        "hubspot_owner_id": "101",
        "seats": "40",
        "plan": "Team",
        "iacv": "12000",
    },
    "createdAt": "2025-01-01T00:00:00Z",
    "updatedAt": "2025-02-01T00:00:00Z",
    "archived": False,
}
SEATS = hubspot.CompanyProperties(users="seats")


def test_a_listed_company_reads_the_configured_tier_properties() -> None:
    (event,) = hubspot.object_events("companies", COMPANY, received_at=NOW, index=0, company=SEATS)
    assert isinstance(event, AccountChangedEvent)
    p = event.payload
    assert (p.users, p.plan, p.iacv) == (40, "Team", Decimal("12000"))
    assert p.domains == ["globex.example.net"]
    assert p.change == "updated"
    again = hubspot.object_events("companies", COMPANY, received_at=NOW, index=3, company=SEATS)
    assert again[0].id == event.id


def test_a_company_webhook_reads_the_same_tier_properties() -> None:
    note = {
        "eventId": 1,
        "subscriptionId": 10,
        "portalId": 99,
        "occurredAt": 1717171700000,
        "subscriptionType": "company.propertyChange",
        "propertyName": "seats",
        "propertyValue": "40",
        "objectId": 512,
    }
    (event,) = hubspot.parse_batch([note], received_at=NOW, company=SEATS)
    assert isinstance(event, AccountChangedEvent)
    assert event.payload.users == 40
    (default,) = hubspot.parse_batch([note], received_at=NOW)
    assert isinstance(default, AccountChangedEvent)
    assert default.payload.users is None  # "seats" is not read unless configured


def test_a_deals_stage_history_gives_one_change_per_stage() -> None:
    deal = {
        "id": "77",
        "properties": {"dealname": "Big", "dealstage": "closedwon", "amount": "900"},
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": "2025-03-01T00:00:00Z",
        "associations": {"companies": {"results": [{"id": "512", "type": "deal_to_company"}]}},
        "propertiesWithHistory": {
            "dealstage": [
                {"value": "closedwon", "timestamp": "2025-03-01T00:00:00Z"},
                {"value": "qualifiedtobuy", "timestamp": "2025-01-15T00:00:00Z"},
            ]
        },
    }
    deal_event, *stages = hubspot.object_events("deals", deal, received_at=NOW, index=0)
    assert isinstance(deal_event, OpportunityChangedEvent)
    assert all(isinstance(s, OpportunityChangedEvent) for s in stages)
    assert deal_event.payload.account_id == "512"
    assert deal_event.payload.amount == Decimal("900")
    assert [
        (s.payload.stage, s.occurred_at.month)
        for s in stages
        if isinstance(s, OpportunityChangedEvent)
    ] == [
        ("closedwon", 3),
        ("qualifiedtobuy", 1),
    ]
    assert len({deal_event.id, *(s.id for s in stages)}) == 3


def test_hubspots_ten_second_window() -> None:
    now = [100.0]
    window = RateWindow(3, 10.0, lambda: now[0])
    assert [window.wait_s() for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] += 4
    assert window.wait_s() == pytest.approx(6.0)  # the first call leaves the window at 110
    now[0] += 6  # 110: the three calls at 100 have left the window
    assert [window.wait_s() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.wait_s() == pytest.approx(10.0)
