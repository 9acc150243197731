"""Event builders for the renewals tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from revops.events.catalogue import AccountChangedEvent, OpportunityChangedEvent
from revops.events.testing import account_changed, opportunity_changed


def opportunity(
    event_id: str,
    at: datetime,
    opportunity_id: str,
    *,
    account_id: str = "001ACME",
    stage: str | None = None,
    amount: str | None = None,
    owner_id: str | None = None,
    close_date: date | None = None,
    contract_end_date: date | None = None,
    opportunity_type: str | None = None,
    pipeline: str | None = None,
    forecast_category: str | None = None,
    change: Literal["created", "updated", "deleted"] = "updated",
    name: str | None = None,
) -> OpportunityChangedEvent:
    return opportunity_changed(
        opportunity_id,
        at,
        change=change,
        id=event_id,
        account_id=account_id,
        name=name,
        stage=stage,
        amount=Decimal(amount) if amount is not None else None,
        owner_id=owner_id,
        close_date=close_date,
        contract_end_date=contract_end_date,
        opportunity_type=opportunity_type,
        pipeline=pipeline,
        forecast_category=forecast_category,
    )


def account(
    event_id: str,
    at: datetime,
    account_id: str,
    *,
    users: int | None = None,
    plan: str | None = None,
    iacv: str | None = None,
) -> AccountChangedEvent:
    return account_changed(
        account_id,
        at,
        change="updated",
        id=event_id,
        users=users,
        plan=plan,
        iacv=Decimal(iacv) if iacv is not None else None,
    )
