"""Event builders for the renewals tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    SourceRef,
    make_event,
)


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
    change: str = "updated",
    name: str | None = None,
) -> OpportunityChangedEvent:
    return make_event(
        OpportunityChangedEvent,
        id=event_id,
        source="salesforce",
        occurred_at=at,
        payload=OpportunityChanged(
            opportunity_id=opportunity_id,
            change=change,  # type: ignore[arg-type]
            source_ref=SourceRef(
                system="salesforce", object_type="Opportunity", object_id=opportunity_id
            ),
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
            created_at=at if change == "created" else None,
        ),
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
    return make_event(
        AccountChangedEvent,
        id=event_id,
        source="salesforce",
        occurred_at=at,
        payload=AccountChanged(
            account_id=account_id,
            change="updated",
            source_ref=SourceRef(system="salesforce", object_type="Account", object_id=account_id),
            users=users,
            plan=plan,
            iacv=Decimal(iacv) if iacv is not None else None,
        ),
    )
