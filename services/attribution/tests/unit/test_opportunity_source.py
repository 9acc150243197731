from datetime import UTC, datetime, timedelta

import pytest

from revops.attribution.domain.lead_source import LeadSource, RepRole
from revops.attribution.domain.opportunity_source import (
    AccountContact,
    ConvertedLead,
    OpportunitySourcePolicy,
    SourceRule,
    opportunity_source,
)

LEAD_CREATED = datetime(2026, 5, 20, 15, 30, tzinfo=UTC)
LEAD = ConvertedLead("lead@acme.com", LeadSource.INBOUND, LEAD_CREATED)


def contact(
    person_id: str, days_before: float, source: LeadSource = LeadSource.SDR_CREATED
) -> AccountContact:
    return AccountContact(person_id, source, LEAD_CREATED - timedelta(days=days_before))


def test_by_default_the_opportunity_takes_the_converted_leads_source() -> None:
    decision = opportunity_source(LEAD, [contact("old@acme.com", 10, LeadSource.INBOUND)])
    assert decision.opportunity_source == "Inbound"
    assert decision.lead_source == LeadSource.INBOUND
    assert decision.rule == SourceRule.CONVERTED_LEAD
    assert "lead@acme.com" in decision.reason
    assert decision.source_person_id is None


def test_an_outbound_contact_created_60_days_before_the_lead_counts() -> None:
    decision = opportunity_source(LEAD, [contact("sdr-target@acme.com", 60)])
    assert decision.opportunity_source == "SDR Created"
    assert decision.rule == SourceRule.OUTBOUND_CONTACT_60D
    assert decision.source_person_id == "sdr-target@acme.com"
    # The lead's own source is kept beside.
    assert decision.lead_source == LeadSource.INBOUND
    assert "60 days" in decision.reason and "sdr-target@acme.com" in decision.reason


def test_an_outbound_contact_created_61_days_before_the_lead_does_not_count() -> None:
    decision = opportunity_source(LEAD, [contact("sdr-target@acme.com", 61)])
    assert decision.opportunity_source == "Inbound"
    assert decision.rule == SourceRule.CONVERTED_LEAD


def test_the_window_is_elapsed_time_a_second_past_60_days_does_not_count() -> None:
    just_past = AccountContact(
        "x@acme.com", LeadSource.AE_CREATED, LEAD_CREATED - timedelta(days=60, seconds=1)
    )
    assert opportunity_source(LEAD, [just_past]).rule == SourceRule.CONVERTED_LEAD


def test_a_contact_created_after_the_lead_never_counts() -> None:
    later = contact("later@acme.com", -1)
    assert opportunity_source(LEAD, [later]).rule == SourceRule.CONVERTED_LEAD


def test_a_contact_created_at_the_same_instant_did_not_already_exist() -> None:
    same = contact("same@acme.com", 0)
    assert opportunity_source(LEAD, [same]).rule == SourceRule.CONVERTED_LEAD
    a_second_before = AccountContact(
        "b@acme.com", LeadSource.SDR_CREATED, LEAD_CREATED - timedelta(seconds=1)
    )
    assert opportunity_source(LEAD, [a_second_before]).rule == SourceRule.OUTBOUND_CONTACT_60D


@pytest.mark.parametrize(
    "source",
    [LeadSource.INBOUND, LeadSource.REFERRAL, LeadSource.EVENT, LeadSource.OTHER],
)
def test_only_outbound_contacts_count(source: LeadSource) -> None:
    assert opportunity_source(LEAD, [contact("c@acme.com", 5, source)]).rule == (
        SourceRule.CONVERTED_LEAD
    )


def test_the_most_recent_outbound_contact_wins() -> None:
    contacts = [
        contact("ae-older@acme.com", 40, LeadSource.AE_CREATED),
        contact("sdr-newer@acme.com", 3, LeadSource.SDR_CREATED),
        contact("too-old@acme.com", 70, LeadSource.AE_CREATED),
        contact("inbound-newest@acme.com", 1, LeadSource.INBOUND),
    ]
    decision = opportunity_source(LEAD, contacts)
    assert decision.opportunity_source == "SDR Created"
    assert decision.source_person_id == "sdr-newer@acme.com"


def test_the_lead_itself_is_not_another_contact() -> None:
    outbound_lead = ConvertedLead("lead@acme.com", LeadSource.SDR_CREATED, LEAD_CREATED)
    itself = AccountContact("lead@acme.com", LeadSource.AE_CREATED, LEAD_CREATED - timedelta(1))
    decision = opportunity_source(outbound_lead, [itself])
    assert decision.rule == SourceRule.CONVERTED_LEAD
    assert decision.opportunity_source == "SDR Created"


def test_the_window_is_policy() -> None:
    policy = OpportunitySourcePolicy(outbound_window=timedelta(days=90))
    assert opportunity_source(LEAD, [contact("c@acme.com", 61)], policy=policy).rule == (
        SourceRule.OUTBOUND_CONTACT_60D
    )


def test_a_manual_opportunity_takes_the_given_source() -> None:
    decision = opportunity_source(None, given_source="Partner", owner_role=RepRole.AE)
    assert decision.opportunity_source == "Partner"
    assert decision.rule == SourceRule.MANUAL
    assert decision.lead_source is None


@pytest.mark.parametrize(
    ("role", "expected"),
    [(RepRole.AE, "AE Created"), (RepRole.SDR, "SDR Created"), (None, "Other")],
)
def test_a_manual_opportunity_without_a_source_takes_the_owners_role(
    role: RepRole | None, expected: str
) -> None:
    decision = opportunity_source(
        None, [contact("c@acme.com", 1)], given_source=" ", owner_role=role
    )
    assert decision.opportunity_source == expected
    assert decision.rule == SourceRule.MANUAL
    assert decision.reason
