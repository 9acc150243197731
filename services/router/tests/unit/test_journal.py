"""A routing decision survives the trip through the journal (``lead.routed``) unchanged,
which is what makes a rebuild give the same assignments."""

from datetime import UTC, datetime

import pytest

from revops.events.catalogue import LeadRoutedEvent, NotificationRequestedEvent
from revops.events.codec import decode_event, encode_event
from revops.router.domain.matching import AccountMatch
from revops.router.domain.rotation import RotationState, Turn
from revops.router.domain.rules import Decision, Lead
from revops.router.journal import decision_events, decision_from_record
from revops.router.leads import lead_id_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEAD = Lead(lead_id_for("jane@acme.com"), "jane@acme.com", T0, "US", "demo_request")
MATCH = AccountMatch("001ACME", "exact_domain", "acme.com", "acme.com")

DECISIONS = [
    Decision(
        "round_robin",
        "005A",
        "SDR",
        "inbound-AMER",
        "high",
        "Round robin...",
        "AMER",
        None,
        Turn("005A", 41, RotationState(42, 1, 7)),
    ),
    Decision("recent_touch", "005B", "SDR", None, "normal", "SDR 005B touched...", "EMEA"),
    Decision("open_opportunity", "005X", "AE", None, "normal", "Acme has...", "AMER", "005A"),
    Decision("manual_review", None, None, "manual_review", "normal", "Consultant lead", None),
    Decision("unassigned", None, None, "unassigned", "high", "Nobody eligible", "APAC"),
]


@pytest.mark.parametrize("decision", DECISIONS, ids=lambda d: d.rule)
def test_decision_round_trips_through_the_routing_topic(decision):
    events = decision_events(LEAD, MATCH, decision)
    routed = decode_event(encode_event(events[0]))
    assert isinstance(routed, LeadRoutedEvent)
    assert decision_from_record(routed.payload.model_dump(mode="json")) == decision


def test_lead_id_is_stable_per_email_and_event_ids_are_derived():
    assert lead_id_for("jane@acme.com") == LEAD.lead_id != lead_id_for("joe@acme.com")
    first = decision_events(LEAD, MATCH, DECISIONS[0])
    again = decision_events(LEAD, MATCH, DECISIONS[0])
    assert [e.id for e in first] == [e.id for e in again]


def test_high_priority_and_open_opportunity_notify():
    kinds = [
        e.payload.kind
        for d in DECISIONS
        for e in decision_events(LEAD, MATCH, d)
        if isinstance(e, NotificationRequestedEvent)
    ]
    # Unassigned high-priority leads have nobody to notify (they are in the report).
    assert kinds == ["high_priority_lead", "open_opportunity_review"]
