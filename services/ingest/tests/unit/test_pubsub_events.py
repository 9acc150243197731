"""A decoded Pub/Sub API event -> the CometD message the change-event webhook takes:
bitmaps to field names (top level and compound parts), times and dates to ISO 8601,
nulls dropped but cleared fields kept, compound parts under their flat names."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from revops.events.catalogue import PersonChangedEvent
from revops.ingest.domain import salesforce
from revops.ingest.domain.errors import MalformedEvent
from revops.ingest.domain.pubsub import cometd_message, field_names

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": n, "type": ["null", "string"]} for n in ("Street", "City", "Country")],
}
NAME = {
    "type": "record",
    "name": "Name",
    "fields": [{"name": n, "type": ["null", "string"]} for n in ("FirstName", "LastName")],
}
CONTACT = {
    "type": "record",
    "name": "ContactChangeEvent",
    "fields": [
        {"name": "ChangeEventHeader", "type": "string"},  # its shape does not matter here
        {"name": "Name", "type": ["null", NAME]},
        {"name": "Email", "type": ["null", "string"]},
        {"name": "MailingAddress", "type": ["null", ADDRESS]},
        {"name": "AccountId", "type": ["null", "string"]},
        {"name": "CreatedDate", "type": ["null", "long"]},
        {"name": "Birthdate", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "NumberOfLogins__c", "type": ["null", "int"]},
    ],
}
FIELDS: list[Any] = CONTACT["fields"]  # type: ignore[assignment]


def header(**bitmaps: list[str]) -> dict[str, Any]:
    return {
        "entityName": "Contact",
        "recordIds": ["0035g00000AbCdEAAV"],
        "changeType": "UPDATE",
        "changeOrigin": "",
        "transactionKey": "tx-1",
        "sequenceNumber": 3,
        "commitTimestamp": 1719590400000,
        "commitNumber": 7,
        "commitUser": "0055g00000Ab1CdAAJ",
        "nulledFields": bitmaps.get("nulled", []),
        "diffFields": [],
        "changedFields": bitmaps.get("changed", []),
    }


def test_top_level_bits_name_the_schema_fields_by_position() -> None:
    # bits 2 (Email) and 4 (AccountId): 0b10100
    assert field_names(["0x14"], FIELDS, "changedFields") == ["Email", "AccountId"]
    assert field_names([], FIELDS, "changedFields") == []


def test_compound_parts_are_named_under_their_field() -> None:
    # position 3 is MailingAddress; bits 1 and 2 of its parts: City, Country
    names = field_names(["0x08", "3-0x06"], FIELDS, "changedFields")
    assert names == ["MailingAddress", "MailingAddress.City", "MailingAddress.Country"]


@pytest.mark.parametrize(
    ("bitmaps", "says"),
    [
        (["0x100"], "names field 8, the schema has 8"),
        (["9-0x01"], "names field 9"),
        (["zz"], "not a field bitmap"),
        (["2-0x01"], "expected a record"),  # Email is not compound
        ([7], "expected a bitmap string"),
    ],
)
def test_a_bitmap_the_schema_cannot_explain_is_refused(bitmaps: list[Any], says: str) -> None:
    with pytest.raises(MalformedEvent) as refused:
        field_names(bitmaps, FIELDS, "ChangeEventHeader.changedFields")
    assert says in str(refused.value)


def test_values_become_what_the_webhook_carries() -> None:
    decoded = {
        "ChangeEventHeader": header(changed=["0x7a"], nulled=["0x10"]),
        "Name": {"FirstName": "Ada", "LastName": None},
        "Email": "ada@example.com",
        "MailingAddress": {"Street": None, "City": "Lyon", "Country": "France"},
        "AccountId": None,  # cleared (nulledFields)
        "CreatedDate": 1712071269000,
        "Birthdate": date(1990, 12, 10),
        "NumberOfLogins__c": 12,
    }
    message = cometd_message(
        decoded, CONTACT, topic="/data/ContactChangeEvent", schema_id="s1", replay_id=b"\x01\xff"
    )
    payload = message["data"]["payload"]
    assert message["channel"] == "/data/ContactChangeEvent"
    assert message["data"]["event"] == {"replayId": "01ff"}
    assert payload["Name"] == {"FirstName": "Ada"}
    assert (payload["FirstName"], payload["MailingCountry"], payload["MailingCity"]) == (
        "Ada",
        "France",
        "Lyon",
    )
    assert "MailingStreet" not in payload and "LastName" not in payload
    assert payload["AccountId"] is None
    assert payload["CreatedDate"] == "2024-04-02T15:21:09.000Z"
    assert payload["Birthdate"] == "1990-12-10"
    assert payload["NumberOfLogins__c"] == 12  # an int field is a number, not a time
    assert payload["ChangeEventHeader"]["changedFields"] == [
        "Name",
        "MailingAddress",
        "AccountId",
        "CreatedDate",
        "Birthdate",
    ]
    assert payload["ChangeEventHeader"]["nulledFields"] == ["AccountId"]

    (event,) = salesforce.parse_stream_events(
        message, custom=salesforce.CustomFields(), received_at=datetime.now(UTC)
    )
    assert isinstance(event, PersonChangedEvent)
    person = event.payload
    assert (person.first_name, person.country, person.email) == ("Ada", "France", "ada@example.com")
    assert person.account_id is None and person.change == "updated"


def test_a_platform_event_keeps_its_uuid_where_cometd_has_it() -> None:
    schema = {
        "type": "record",
        "name": "Lead_Converted__e",
        "fields": [
            {"name": "EventUuid", "type": ["null", "string"]},
            {"name": "CreatedDate", "type": "long"},
        ],
    }
    decoded = {"EventUuid": "4a1b", "CreatedDate": 1712071269000}
    message = cometd_message(
        decoded, schema, topic="/event/Lead_Converted__e", schema_id="s2", replay_id=b"\x02"
    )
    assert message["data"]["event"] == {"replayId": "02", "EventUuid": "4a1b"}
    assert "ChangeEventHeader" not in message["data"]["payload"]


def test_an_avro_timestamp_is_written_in_milliseconds_utc() -> None:
    schema = {
        "type": "record",
        "name": "E",
        "fields": [{"name": "At", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }
    at = datetime(2024, 6, 28, 16, 0, 0, 123456, tzinfo=UTC)
    message = cometd_message({"At": at}, schema, topic="t", schema_id="s", replay_id=b"")
    assert message["data"]["payload"]["At"] == "2024-06-28T16:00:00.123Z"
