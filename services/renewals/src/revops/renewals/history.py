"""Opportunity changes in and out of the database: the raw change as stored JSON, and the
rows that hold each version (for the stage history) and the latest one."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from revops.events.catalogue import OpportunityChangedEvent
from revops.renewals.domain.pipeline import Milestones, OpportunityChange, OpportunityVersion
from revops.renewals.domain.renewals import RenewalPolicy, is_renewable
from revops.renewals.domain.stages import ForecastCategory, Stage, StageKind

_DECIMALS = ("amount",)
_DATES = ("close_date", "contract_end_date")
_DATETIMES = ("created_at",)
_FIELDS = (
    "stage",
    "is_closed",
    "is_won",
    "amount",
    "forecast_category",
    "owner_id",
    "account_id",
    "close_date",
    "contract_end_date",
    "pipeline",
    "opportunity_type",
    "name",
    "created_at",
)


def change_from_event(event: OpportunityChangedEvent) -> OpportunityChange:
    p = event.payload
    return OpportunityChange(
        at=event.occurred_at,
        event_id=event.id,
        stage=p.stage,
        is_closed=p.is_closed,
        is_won=p.is_won,
        amount=p.amount,
        forecast_category=p.forecast_category,
        owner_id=p.owner_id,
        account_id=p.account_id,
        close_date=p.close_date,
        contract_end_date=p.contract_end_date,
        pipeline=p.pipeline,
        opportunity_type=p.opportunity_type,
        name=p.name,
        created_at=p.created_at,
    )


def change_json(change: OpportunityChange) -> dict[str, Any]:
    """The fields the event sent (None ones left out), JSON-safe and exact."""
    doc: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(change, name)
        if value is None:
            continue
        doc[name] = value.isoformat() if isinstance(value, date | datetime) else value
        if isinstance(value, Decimal):
            doc[name] = str(value)
    return doc


def change_from_json(event_id: str, at: datetime, doc: dict[str, Any]) -> OpportunityChange:
    values: dict[str, Any] = dict(doc)
    for name in _DECIMALS:
        if name in values:
            values[name] = Decimal(values[name])
    for name in _DATES:
        if name in values:
            values[name] = date.fromisoformat(values[name])
    for name in _DATETIMES:
        if name in values:
            values[name] = datetime.fromisoformat(values[name])
    return OpportunityChange(at=at, event_id=event_id, **values)


def _renewal_flag(version: OpportunityVersion, policy: RenewalPolicy) -> bool:
    pipeline = version.pipeline
    renewal_type = version.opportunity_type
    in_pipeline = pipeline is not None and pipeline.lower() == policy.pipeline.lower()
    typed = renewal_type is not None and renewal_type.lower() == policy.opportunity_type.lower()
    return in_pipeline or typed


def version_columns(version: OpportunityVersion, policy: RenewalPolicy) -> dict[str, Any]:
    stage = version.stage
    return {
        "stage": stage.name if stage else None,
        "stage_order": stage.order if stage else None,
        "stage_kind": stage.kind.value if stage else None,
        "amount": version.amount,
        "forecast_category": version.forecast_category.value if version.forecast_category else None,
        "owner_id": version.owner_id,
        "account_id": version.account_id,
        "closed_at": version.closed_at,
        "is_renewal": _renewal_flag(version, policy),
    }


def history_row(
    opportunity_id: str, change: OpportunityChange, version: OpportunityVersion, p: RenewalPolicy
) -> dict[str, Any]:
    return {
        "event_id": change.event_id,
        "opportunity_id": opportunity_id,
        "at": change.at,
        "change": change_json(change),
        **version_columns(version, p),
    }


def opportunity_row(
    opportunity_id: str,
    last: OpportunityChange,
    version: OpportunityVersion,
    marks: Milestones,
    policy: RenewalPolicy,
) -> dict[str, Any]:
    return {
        "opportunity_id": opportunity_id,
        "last_at": last.at,
        "last_event_id": last.event_id,
        "name": version.name,
        "close_date": version.close_date,
        "contract_end_date": version.contract_end_date,
        "pipeline": version.pipeline,
        "opportunity_type": version.opportunity_type,
        "created_at": version.created_at,
        "nbm_at": marks.nbm_at,
        "qualified_at": marks.qualified_at,
        **version_columns(version, policy),
    }


def stage_from_row(row: Any) -> Stage | None:
    if row.stage is None or row.stage_kind is None:
        return None
    return Stage(name=row.stage, order=row.stage_order, kind=StageKind(row.stage_kind))


def version_from_row(row: Any) -> OpportunityVersion:
    """The latest version as stored in ``opportunities``, to fold the next change onto."""
    return OpportunityVersion(
        at=row.last_at,
        stage=stage_from_row(row),
        amount=row.amount,
        forecast_category=ForecastCategory(row.forecast_category)
        if row.forecast_category
        else None,
        owner_id=row.owner_id,
        account_id=row.account_id,
        close_date=row.close_date,
        contract_end_date=row.contract_end_date,
        pipeline=row.pipeline,
        opportunity_type=row.opportunity_type,
        name=row.name,
        created_at=row.created_at,
        closed_at=row.closed_at,
    )


def renewable(version: OpportunityVersion, policy: RenewalPolicy) -> bool:
    return is_renewable(version.opportunity_type, version.pipeline, policy)
