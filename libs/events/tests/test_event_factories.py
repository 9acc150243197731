"""The event factories every service's tests build their events with."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from revops.events.catalogue import Event
from revops.events.codec import decode_event, encode_event
from revops.events.testing import (
    account_changed,
    activity_logged,
    form_submitted,
    lead_converted,
    opportunity_changed,
    person_changed,
    signup_created,
)

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def every_kind() -> list[Event]:
    return [
        form_submitted("Jane@Acme.example", AT, form_type="ebook", campaign_id="cmp-1"),
        signup_created("jane@acme.example", AT),
        person_changed("lead", "00Q1", AT, change="created", email="jane@acme.example"),
        lead_converted("00Q1", AT, account_id="0011", opportunity_id="0061"),
        account_changed("0011", AT, change="updated", name="Acme", domains=["acme.example"]),
        opportunity_changed("0061", AT, change="created", amount=Decimal("10000")),
        activity_logged(AT, kind="call", rep_id="005A", account_id="0011"),
    ]


@pytest.mark.parametrize("event", every_kind(), ids=lambda e: e.type)
def test_each_kind_survives_the_codec_keyed_by_the_catalogue_s_rule(event: Event) -> None:
    assert decode_event(encode_event(event)) == event
    kind: Any = type(event)  # the catalogue's class of this kind, with its own key rule
    assert event.key == kind.key_of(event.payload)
    assert event.occurred_at == event.received_at == AT


def test_ids_are_fresh_unless_given() -> None:
    first, second = (form_submitted("jane@acme.example", AT) for _ in range(2))
    assert first.id != second.id
    again = form_submitted("jane@acme.example", AT, id=first.id)
    assert again == first


def test_salesforce_records_name_their_object_and_the_key_follows_the_catalogue() -> None:
    person = person_changed("contact", "0031", AT, change="updated", account_id="0011")
    assert (person.payload.source_ref.object_type, person.payload.source_ref.object_id) == (
        "Contact",
        "0031",
    )
    opportunity = opportunity_changed("0061", AT, change="updated", account_id="0011")
    assert opportunity.payload.source_ref.object_type == "Opportunity"
    assert opportunity.payload.account_id == "0011"
    activity = activity_logged(AT, kind="email")
    assert activity.payload.activity_id == activity.id == activity.payload.source_ref.object_id


def test_a_creation_is_created_at_its_moment_and_an_update_only_when_told() -> None:
    assert person_changed("lead", "00Q1", AT, change="created").payload.created_at == AT
    assert opportunity_changed("0061", AT, change="created").payload.created_at == AT
    assert opportunity_changed("0061", AT, change="updated").payload.created_at is None
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    updated = person_changed("lead", "00Q1", AT, change="updated", created_at=earlier)
    assert updated.payload.created_at == earlier


def test_a_sign_up_has_a_user_of_its_own_unless_given() -> None:
    assert signup_created("a@b.example", AT, id="s1").payload.user_id == "usr-s1"
    assert signup_created("a@b.example", AT, user_id="u7").payload.user_id == "u7"


def test_a_field_the_payload_does_not_have_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="FormSubmitted has no field campain_id"):
        form_submitted("jane@acme.example", AT, campain_id="cmp-1")
