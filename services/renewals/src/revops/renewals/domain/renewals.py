"""One renewal per Closed Won, never two, and cancelled when the win is taken back.

The renewal's id is derived from the won opportunity's id, so however often and in
whatever order the Closed Won arrives (redelivery, replay, two CRMs), there is only
ever one id to create; the database's unique key does the rest.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Literal

from revops.renewals.domain.stages import squash

# Fixed forever: changing it would give every past renewal a new id.
RENEWAL_NAMESPACE = uuid.UUID("6f1d2c1e-3b7a-5e0c-9a54-5b1f1d7c2e10")
CENTS = Decimal("0.01")


class RenewalStatus(StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class RenewalPolicy:
    term_months: int = 12
    uplift_percent: Decimal = Decimal(0)
    pipeline: str = "Renewals"
    opportunity_type: str = "Renewal"
    # Types whose win starts (or continues) a subscription; an opportunity without a
    # type counts as new business. Expansions are co-termed with the contract they grow.
    renewable_types: frozenset[str] = frozenset({"New Business", "Renewal"})


@dataclass(frozen=True)
class WonOpportunity:
    opportunity_id: str
    won_on: date  # the day the stage moved to Closed Won, in the company's time zone
    account_id: str | None = None
    owner_id: str | None = None
    amount: Decimal | None = None
    close_date: date | None = None
    contract_end_date: date | None = None
    opportunity_type: str | None = None
    pipeline: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class RenewalPlan:
    renewal_id: str
    source_opportunity_id: str
    account_id: str | None
    owner_id: str | None
    amount: Decimal | None
    close_date: date
    pipeline: str
    opportunity_type: str
    name: str


@dataclass(frozen=True)
class ExistingRenewal:
    renewal_id: str
    status: RenewalStatus
    amount: Decimal | None
    close_date: date


Action = Literal["create", "reinstate", "update", "cancel", "keep"]


@dataclass(frozen=True)
class RenewalDecision:
    action: Action
    plan: RenewalPlan | None = None  # what the renewal should say (create/reinstate/update)


def renewal_id_for(source_opportunity_id: str) -> str:
    return str(uuid.uuid5(RENEWAL_NAMESPACE, source_opportunity_id))


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, kept in the month it lands in.

    A day the target month lacks becomes that month's last day: Jan 31 + 1 month is Feb
    28 (29 in a leap year), Feb 29 + 12 months is Feb 28. A month end that exists stays
    as it is (Apr 30 + 1 month is May 30), so a term never depends on where it started
    beyond the clamp.
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def is_renewable(opportunity_type: str | None, pipeline: str | None, policy: RenewalPolicy) -> bool:
    if pipeline is not None and squash(pipeline) == squash(policy.pipeline):
        return True  # whatever its type says, a deal in the Renewals pipeline renews
    if opportunity_type is None:
        return True
    return squash(opportunity_type) in {squash(t) for t in policy.renewable_types}


def renewal_amount(won_amount: Decimal | None, policy: RenewalPolicy) -> Decimal | None:
    if won_amount is None:
        return None
    factor = 1 + policy.uplift_percent / 100
    return (won_amount * factor).quantize(CENTS, rounding=ROUND_HALF_UP)


def renewal_close_date(won: WonOpportunity, policy: RenewalPolicy) -> date:
    """The contract end date when given, else the close date (or the day won) plus the term."""
    if won.contract_end_date is not None:
        return won.contract_end_date
    start = won.close_date if won.close_date is not None else won.won_on
    return add_months(start, policy.term_months)


def plan_renewal(won: WonOpportunity, policy: RenewalPolicy) -> RenewalPlan:
    close = renewal_close_date(won, policy)
    base = won.name or won.opportunity_id
    return RenewalPlan(
        renewal_id=renewal_id_for(won.opportunity_id),
        source_opportunity_id=won.opportunity_id,
        account_id=won.account_id,
        owner_id=won.owner_id,
        amount=renewal_amount(won.amount, policy),
        close_date=close,
        pipeline=policy.pipeline,
        opportunity_type=policy.opportunity_type,
        name=f"{base} - Renewal {close.isoformat()}",
    )


def decide_renewal(
    won: WonOpportunity | None, existing: ExistingRenewal | None, policy: RenewalPolicy
) -> RenewalDecision:
    """What to do with the renewal of one opportunity, given how that opportunity stands.

    ``won`` is the opportunity when it is Closed Won (and renewable) as of its latest
    change, else None. The answer depends only on that state and the stored renewal, so
    applying it again, or after a late older event, changes nothing.
    """
    if won is None:
        if existing is not None and existing.status is RenewalStatus.OPEN:
            return RenewalDecision("cancel")
        return RenewalDecision("keep")
    plan = plan_renewal(won, policy)
    if existing is None:
        return RenewalDecision("create", plan)
    if existing.status is RenewalStatus.CANCELLED:
        return RenewalDecision("reinstate", plan)
    if existing.status is RenewalStatus.OPEN and (
        existing.amount != plan.amount or existing.close_date != plan.close_date
    ):
        # Products added after the win set the contract end date: the renewal follows.
        return RenewalDecision("update", plan)
    return RenewalDecision("keep")
