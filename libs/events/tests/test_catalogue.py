from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from revops.events import topics
from revops.events.catalogue import (
    EVENT_CLASSES,
    FormSubmitted,
    FormSubmittedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    RepChanged,
    RepChangedEvent,
    SourceRef,
    derived_event_id,
    make_event,
)
from revops.events.codec import UndecodableEvent, decode_event, encode_event

WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_form_event_is_keyed_by_normalised_email_on_the_forms_topic():
    event = make_event(
        FormSubmittedEvent,
        id="hs-1",
        source="hubspot",
        occurred_at=WHEN,
        payload=FormSubmitted(email="  Jane.Doe@Example.COM ", form_type="demo_request"),
    )
    assert event.key == "jane.doe@example.com"
    assert event.topic is topics.FORMS
    assert event.topic.name("x-") == "x-revops.forms"


def test_round_trip_keeps_types_and_utc():
    paris = timezone(timedelta(hours=2))
    event = make_event(
        OpportunityChangedEvent,
        id="sf-1",
        source="salesforce",
        occurred_at=datetime(2026, 6, 1, 12, 0, tzinfo=paris),
        payload=OpportunityChanged(
            opportunity_id="006A",
            change="updated",
            source_ref=SourceRef(system="salesforce", object_type="Opportunity", object_id="006A"),
            account_id="001A",
            amount=Decimal("120000.50"),
            stage="Closed Won",
        ),
    )
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert isinstance(decoded, OpportunityChangedEvent)
    assert decoded.payload.amount == Decimal("120000.50")
    assert decoded.occurred_at == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert decoded.occurred_at.utcoffset() == timedelta(0)
    assert decoded.key == "001A"


def test_opportunity_without_account_is_keyed_by_itself():
    payload = OpportunityChanged(
        opportunity_id="18811223344",
        change="created",
        source_ref=SourceRef(system="hubspot", object_type="deal", object_id="18811223344"),
    )
    assert OpportunityChangedEvent.key_of(payload) == "opportunity:18811223344"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "two@@example.com", "sp ace@x.com"])
def test_invalid_emails_are_refused_with_the_field_named(bad):
    with pytest.raises(ValidationError) as info:
        FormSubmitted(email=bad)
    assert info.value.errors()[0]["loc"] == ("email",)


def test_naive_times_are_refused():
    with pytest.raises(ValidationError):
        make_event(
            FormSubmittedEvent,
            id="x",
            source="hubspot",
            occurred_at=datetime(2026, 1, 1),
            payload=FormSubmitted(email="a@b.co"),
        )


@pytest.mark.parametrize(
    "value",
    [b"not json", b"{}", b'{"type": "no.such.event"}', None, b'{"type": "form.submitted"}'],
)
def test_undecodable_records_raise_undecodable_event(value):
    with pytest.raises(UndecodableEvent):
        decode_event(value)


def test_every_event_type_has_a_topic_and_a_unique_name():
    assert len(EVENT_CLASSES) == 16
    for name, cls in EVENT_CLASSES.items():
        assert cls.model_fields["type"].default == name
        assert cls.topic in topics.ALL_TOPICS


def test_derived_ids_are_stable_and_distinct():
    assert derived_event_id("routed", "lead-1") == derived_event_id("routed", "lead-1")
    assert derived_event_id("routed", "lead-1") != derived_event_id("routed", "lead-2")
    assert derived_event_id("a", "bc") != derived_event_id("ab", "c")


def test_history_topics_keep_everything():
    for spec in topics.HISTORY_TOPICS:
        assert spec.retention_ms == topics.KEEP_FOREVER
    assert topics.ROUTING not in topics.HISTORY_TOPICS
    assert topics.RENEWALS not in topics.HISTORY_TOPICS


def test_every_topic_is_listed_once():
    names = [t.base_name for t in topics.ALL_TOPICS]
    assert names == [
        "revops.forms",
        "revops.signups",
        "revops.people",
        "revops.accounts",
        "revops.opportunities",
        "revops.activities",
        "revops.roster",
        "revops.routing",
        "revops.renewals",
    ]
    assert topics.by_base_name("revops.roster") is topics.ROSTER


def test_the_roster_is_history_in_one_partition():
    # One partition: one total order of rep changes, so every rebuild creates the reps in
    # the same order (their rotation order).
    assert topics.ROSTER.partitions == 1
    assert topics.ROSTER in topics.HISTORY_TOPICS
    assert topics.ROSTER.retention_ms == topics.KEEP_FOREVER


def test_a_rep_change_carries_the_whole_rep_keyed_by_its_id():
    event = make_event(
        RepChangedEvent,
        id="rep-change-1",
        source="router",
        occurred_at=WHEN,
        payload=RepChanged(
            change="created",
            id="005A",
            role="SDR",
            region="AMER",
            salesforce_user_id="005000000000001AAA",
            hubspot_owner_id="123456",
        ),
    )
    assert event.key == "005A"
    assert event.topic is topics.ROSTER
    decoded = decode_event(encode_event(event))
    assert decoded == event and isinstance(decoded, RepChangedEvent)
    # Defaults are the rep's defaults: a consumer never sees a field missing.
    assert (decoded.payload.active, decoded.payload.weight, decoded.payload.paused) == (
        True,
        1,
        False,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", ""), ("id", "a b"), ("id", "x" * 65), ("weight", -1), ("daily_cap", 2**31)],
)
def test_a_rep_change_that_no_column_could_hold_is_refused(field, value):
    with pytest.raises(ValidationError) as info:
        RepChanged(**{"change": "created", "id": "005A", "role": "AE", field: value})
    assert info.value.errors()[0]["loc"] == (field,)
