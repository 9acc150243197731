"""HubSpot Webhooks API batches -> events."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from revops.events.catalogue import OpportunityChangedEvent, PersonChangedEvent
from revops.ingest.domain.errors import MalformedEvent
from revops.ingest.domain.hubspot import parse_batch as parse_hubspot_batch

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SAMPLE = json.loads(
    (Path(__file__).parent.parent / "formats/hubspot_webhook_batch.json").read_text()
)


def parse_batch(batch: Any, *, received_at: datetime) -> list[Any]:
    return list(parse_hubspot_batch(batch, received_at=received_at))


def note(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": 1,
        "subscriptionId": 10,
        "portalId": 99,
        "appId": 5,
        "occurredAt": 1717171700000,
        "subscriptionType": "deal.propertyChange",
        "propertyName": "dealstage",
        "propertyValue": "qualifiedtobuy",
        "attemptNumber": 0,
        "objectId": 777,
        "changeSource": "CRM_UI",
    }
    base.update(fields)
    return base


def test_the_sample_batch() -> None:
    events = parse_batch(SAMPLE, received_at=NOW)
    assert [e.type for e in events] == [
        "person.changed",
        "person.changed",
        "opportunity.changed",
        "opportunity.changed",
    ]
    created, changed, deal, stage = events
    assert isinstance(created, PersonChangedEvent) and isinstance(stage, OpportunityChangedEvent)
    assert created.payload.change == "created"
    assert created.payload.source_ref.object_id == "51234567801"
    assert created.payload.source_ref.tenant_id == "44556677"
    assert created.key == "hubspot:contact:51234567801"
    assert created.occurred_at == datetime(2024, 5, 31, 16, 8, 20, 123000, tzinfo=UTC)
    assert created.payload.created_at == created.occurred_at
    assert created.received_at == NOW
    assert changed.payload.changed_fields == ["lifecyclestage"]
    assert deal.key == stage.key == "opportunity:18811223344"
    assert stage.payload.stage == "closedwon"
    assert stage.payload.change == "updated"
    assert len({e.id for e in events}) == 4


def test_redelivery_gives_the_same_ids_and_a_reused_event_id_does_not_collide() -> None:
    first = parse_batch(SAMPLE, received_at=NOW)
    again = [dict(n, attemptNumber=n["attemptNumber"] + 3) for n in SAMPLE]
    assert [e.id for e in parse_batch(again, received_at=NOW)] == [e.id for e in first]
    # HubSpot's eventId is not unique: same eventId, another subscription or object.
    a = parse_batch([note(eventId=5, subscriptionId=1)], received_at=NOW)[0]
    b = parse_batch([note(eventId=5, subscriptionId=2)], received_at=NOW)[0]
    c = parse_batch([note(eventId=5, subscriptionId=1, objectId=778)], received_at=NOW)[0]
    d = parse_batch([note(eventId=5, subscriptionId=1, occurredAt=1717171700001)], received_at=NOW)[
        0
    ]
    assert len({a.id, b.id, c.id, d.id}) == 4


def test_events_come_out_oldest_first() -> None:
    events = parse_batch(list(reversed(SAMPLE)), received_at=NOW)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)


@pytest.mark.parametrize(
    ("prop", "value", "field", "expected"),
    [
        ("dealstage", "appointmentscheduled", "stage", "appointmentscheduled"),
        ("amount", "12500.50", "amount", Decimal("12500.50")),
        ("closedate", "1719532800000", "close_date", date(2024, 6, 28)),
        ("closedate", "2024-06-28", "close_date", date(2024, 6, 28)),
        ("hubspot_owner_id", "123456", "owner_id", "123456"),
        ("amount", "", "amount", None),
    ],
)
def test_deal_properties(prop: str, value: str, field: str, expected: Any) -> None:
    [event] = parse_batch([note(propertyName=prop, propertyValue=value)], received_at=NOW)
    assert getattr(event.payload, field) == expected
    assert event.payload.changed_fields == [prop]


def test_contact_properties() -> None:
    events = parse_batch(
        [
            note(
                subscriptionType="contact.propertyChange",
                propertyName="email",
                propertyValue=" Jane.Doe@Example.com ",
                eventId=1,
            ),
            note(
                subscriptionType="contact.propertyChange",
                propertyName="is_consultant",
                propertyValue="true",
                eventId=2,
            ),
        ],
        received_at=NOW,
    )
    assert events[0].payload.email == "jane.doe@example.com"
    assert events[0].key == "jane.doe@example.com"
    assert events[1].payload.is_consultant is True


def association(
    event_id: int,
    kind: str,
    source: int,
    target: int,
    removed: bool = False,
    object_type: str = "deal",
) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 12,
        "portalId": 99,
        "occurredAt": 1717171700000 + event_id,
        "associationType": kind,
        "subscriptionType": f"{object_type}.associationChange",
        "fromObjectId": source,
        "toObjectId": target,
        "associationRemoved": removed,
    }


def test_merge_and_associations() -> None:
    events = parse_batch(
        [
            note(
                subscriptionType="contact.merge",
                objectId=1,
                primaryObjectId=1,
                mergedObjectIds=[2, 3],
                newObjectId=1,
                eventId=1,
            ),
            association(2, "CONTACT_TO_COMPANY", 5, 6, object_type="contact"),
            association(3, "COMPANY_TO_DEAL", 6, 777),
            association(4, "DEAL_TO_COMPANY", 777, 6, removed=True),
            association(5, "DEAL_TO_CONTACT", 777, 5),
        ],
        received_at=NOW,
    )
    merge, company, deal_company, deal_contact = (e.payload for e in events)
    assert merge.change == "merged" and merge.merged_ids == ["2", "3"]
    assert company.account_id == "6"
    assert company.source_ref.object_id == "5"
    assert (deal_company.opportunity_id, deal_company.account_id) == ("777", "6")
    # The removed association (event 4) was skipped: the catalogue cannot say "no longer".
    assert (deal_contact.opportunity_id, deal_contact.contact_id) == ("777", "5")


def test_unknown_types_are_skipped_not_refused() -> None:
    events = parse_batch([note(subscriptionType="ticket.creation"), SAMPLE[0]], received_at=NOW)
    assert [e.type for e in events] == ["person.changed"]


@pytest.mark.parametrize(
    ("index", "broken", "field"),
    [
        (1, {"occurredAt": "yesterday"}, "occurredAt"),
        (2, {"objectId": None}, "objectId"),
        (0, {"subscriptionType": None}, "subscriptionType"),
        (1, {"subscriptionId": None}, "subscriptionId"),
        (2, {"propertyName": "amount", "propertyValue": "lots"}, "propertyValue"),
        (
            0,
            {
                "subscriptionType": "contact.propertyChange",
                "propertyName": "email",
                "propertyValue": "not-an-email",
            },
            "propertyValue",
        ),
    ],
)
def test_a_bad_notification_names_its_field_and_index(
    index: int, broken: dict[str, Any], field: str
) -> None:
    batch = [note(eventId=i) for i in range(3)]
    batch[index] = {**batch[index], **broken}
    with pytest.raises(MalformedEvent) as caught:
        parse_batch(batch, received_at=NOW)
    assert caught.value.index == index
    assert caught.value.field == field
    assert f"event {index}: {field}" in str(caught.value)


def test_shape_refusals() -> None:
    with pytest.raises(MalformedEvent, match="JSON array"):
        parse_batch({"eventId": 1}, received_at=NOW)
    with pytest.raises(MalformedEvent, match="at most 100"):
        parse_batch([note(eventId=i) for i in range(101)], received_at=NOW)
    assert len(parse_batch([note(eventId=i) for i in range(100)], received_at=NOW)) == 100
    with pytest.raises(MalformedEvent, match="event 0: notification"):
        parse_batch(["x"], received_at=NOW)
