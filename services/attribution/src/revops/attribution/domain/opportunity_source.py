"""Opportunity Source (RULES.md "Opportunity source").

When lead L is converted into opportunity O on account A, O takes L's Lead Source,
unless another contact on A that already existed when L was created has an outbound
Lead Source and was created at most 60 days before L: outbound prospecting into one
person often makes a colleague come in through a form, and the outbound effort
deserves the pipeline. L's own source is always kept beside.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from revops.attribution.domain.lead_source import (
    OUTBOUND_LEAD_SOURCES,
    ROLE_LEAD_SOURCE,
    LeadSource,
    RepRole,
)


class SourceRule(StrEnum):
    CONVERTED_LEAD = "converted_lead"
    OUTBOUND_CONTACT_60D = "outbound_contact_60d"
    MANUAL = "manual"


@dataclass(frozen=True)
class OpportunitySourcePolicy:
    """The outbound window is inclusive: a contact created exactly 60 days (60 x 24 h
    of elapsed time) before the lead counts, one created a second earlier does not."""

    outbound_window: timedelta = timedelta(days=60)
    outbound_sources: frozenset[LeadSource] = OUTBOUND_LEAD_SOURCES


DEFAULT_OPPORTUNITY_SOURCE_POLICY = OpportunitySourcePolicy()


@dataclass(frozen=True)
class ConvertedLead:
    person_id: str
    lead_source: LeadSource
    created_at: datetime


@dataclass(frozen=True)
class AccountContact:
    person_id: str
    lead_source: LeadSource
    created_at: datetime


@dataclass(frozen=True)
class OpportunitySourceDecision:
    opportunity_source: str
    lead_source: LeadSource | None
    rule: SourceRule
    reason: str
    # The outbound contact whose source the opportunity took, under the 60-day rule.
    source_person_id: str | None = None


def _days(delta: timedelta) -> str:
    days = round(delta / timedelta(days=1), 1)
    return f"{days:g} day" + ("" if days == 1 else "s")


def outbound_contact(
    lead: ConvertedLead,
    contacts: Iterable[AccountContact],
    policy: OpportunitySourcePolicy = DEFAULT_OPPORTUNITY_SOURCE_POLICY,
) -> AccountContact | None:
    """The most recent other contact on the account with an outbound source, created
    before the lead and within the window; ties by id so replays agree."""
    eligible = [
        contact
        for contact in contacts
        if contact.person_id != lead.person_id
        and contact.lead_source in policy.outbound_sources
        and contact.created_at < lead.created_at
        and lead.created_at - contact.created_at <= policy.outbound_window
    ]
    return max(eligible, key=lambda c: (c.created_at, c.person_id), default=None)


def opportunity_source(
    lead: ConvertedLead | None,
    contacts: Iterable[AccountContact] = (),
    *,
    given_source: str | None = None,
    owner_role: RepRole | None = None,
    policy: OpportunitySourcePolicy = DEFAULT_OPPORTUNITY_SOURCE_POLICY,
) -> OpportunitySourceDecision:
    """Decide an opportunity's source, the rule that decided and why, in one line.

    `contacts` are the account's contacts as known now; only those created before
    the lead can count, so a contact created later never changes the answer.
    """
    if lead is None:
        return _manual(given_source, owner_role)
    contact = outbound_contact(lead, contacts, policy)
    if contact is None:
        window = _days(policy.outbound_window)
        return OpportunitySourceDecision(
            opportunity_source=lead.lead_source.value,
            lead_source=lead.lead_source,
            rule=SourceRule.CONVERTED_LEAD,
            reason=(
                f"Lead Source of the converted lead {lead.person_id} ({lead.lead_source}); "
                f"no outbound contact on the account created in the {window} before it"
            ),
        )
    return OpportunitySourceDecision(
        opportunity_source=contact.lead_source.value,
        lead_source=lead.lead_source,
        rule=SourceRule.OUTBOUND_CONTACT_60D,
        reason=(
            f"Contact {contact.person_id} on the account ({contact.lead_source}) was created "
            f"{_days(lead.created_at - contact.created_at)} before the converted lead "
            f"{lead.person_id} ({lead.lead_source}), within {_days(policy.outbound_window)}"
        ),
        source_person_id=contact.person_id,
    )


def _manual(given_source: str | None, owner_role: RepRole | None) -> OpportunitySourceDecision:
    if given_source is not None and given_source.strip():
        return OpportunitySourceDecision(
            opportunity_source=given_source.strip(),
            lead_source=None,
            rule=SourceRule.MANUAL,
            reason=f"Created without a converted lead; source given on it ({given_source})",
        )
    if owner_role is not None:
        source = ROLE_LEAD_SOURCE[owner_role]
        return OpportunitySourceDecision(
            opportunity_source=source.value,
            lead_source=None,
            rule=SourceRule.MANUAL,
            reason=f"Created without a converted lead or a given source; owner is an {owner_role}",
        )
    return OpportunitySourceDecision(
        opportunity_source=LeadSource.OTHER.value,
        lead_source=None,
        rule=SourceRule.MANUAL,
        reason="Created without a converted lead, a given source or an owner with a known role",
    )
