"""An opportunity's history, and what it says as of any moment.

Each event carries only what changed; the changes are folded in the order they
happened (``occurred_at``, then the event id), never the order they arrived, so a late
or replayed event lands where it belongs and the answers do not depend on delivery.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from revops.renewals.domain.stages import ForecastCategory, Stage, StageMap, forecast_category


@dataclass(frozen=True)
class PipelinePolicy:
    nbm_stage: int = 1  # stage 0 is not pipeline; reaching 1 is the New Business Meeting
    qualified_stage: int = 2  # reaching 2 or beyond qualifies, for good


@dataclass(frozen=True)
class OpportunityChange:
    """What one event said about an opportunity; None means "not sent"."""

    at: datetime
    event_id: str
    stage: str | None = None
    is_closed: bool | None = None
    is_won: bool | None = None
    amount: Decimal | None = None
    forecast_category: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    close_date: date | None = None
    contract_end_date: date | None = None
    pipeline: str | None = None
    opportunity_type: str | None = None
    name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class OpportunityVersion:
    """The opportunity as it stood from ``at`` until the next version."""

    at: datetime
    stage: Stage | None = None
    amount: Decimal | None = None
    forecast_category: ForecastCategory | None = None
    owner_id: str | None = None
    account_id: str | None = None
    close_date: date | None = None
    contract_end_date: date | None = None
    pipeline: str | None = None
    opportunity_type: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None  # when it entered the closed stage it is in

    @property
    def is_open(self) -> bool:
        return self.stage is not None and not self.stage.is_closed

    @property
    def is_won(self) -> bool:
        return self.stage is not None and self.stage.is_won


@dataclass(frozen=True)
class Milestones:
    nbm_at: datetime | None  # counted once, however often the stage goes back and forth
    qualified_at: datetime | None


def ordered(changes: Sequence[OpportunityChange]) -> list[OpportunityChange]:
    return sorted(changes, key=lambda c: (c.at, c.event_id))


def fold(changes: Sequence[OpportunityChange], stages: StageMap) -> list[OpportunityVersion]:
    """Every version of the opportunity, oldest first, from its changes in any order."""
    versions: list[OpportunityVersion] = []
    current = OpportunityVersion(at=datetime.min.replace(tzinfo=UTC))
    stage_name: str | None = None
    for change in ordered(changes):
        if change.stage is not None:
            stage_name = change.stage
        current = apply_change(current, change, stage_name, stages)
        versions.append(current)
    return versions


def apply_change(
    current: OpportunityVersion,
    change: OpportunityChange,
    stage_name: str | None,
    stages: StageMap,
) -> OpportunityVersion:
    """The version after ``change``; ``stage_name`` is the latest name sent so far.

    The CRM's closed/won flags are trusted only with the change that sent them: a stage
    name sent later without flags is read on its own.
    """
    stage = current.stage
    if stage_name is not None and (
        change.stage is not None or change.is_closed is not None or change.is_won is not None
    ):
        stage = stages.parse(stage_name, is_closed=change.is_closed, is_won=change.is_won)
    closed_at = current.closed_at
    if stage is None or not stage.is_closed:
        closed_at = None
    elif current.stage is None or current.stage.kind is not stage.kind:
        closed_at = change.at
    category = current.forecast_category
    if change.forecast_category is not None:
        category = forecast_category(change.forecast_category, stage or _UNKNOWN)
    if stage is not None and (stage.is_closed or change.stage is not None):
        category = forecast_category(category, stage)
    return replace(
        current,
        at=change.at,
        stage=stage,
        amount=_first(change.amount, current.amount),
        forecast_category=category,
        owner_id=_first(change.owner_id, current.owner_id),
        account_id=_first(change.account_id, current.account_id),
        close_date=_first(change.close_date, current.close_date),
        contract_end_date=_first(change.contract_end_date, current.contract_end_date),
        pipeline=_first(change.pipeline, current.pipeline),
        opportunity_type=_first(change.opportunity_type, current.opportunity_type),
        name=_first(change.name, current.name),
        created_at=_first(change.created_at, current.created_at),
        closed_at=closed_at,
    )


_UNKNOWN = Stage(name="", order=None)
T = TypeVar("T")


def _first(new: T | None, old: T | None) -> T | None:
    return new if new is not None else old


def milestones(
    versions: Sequence[OpportunityVersion], policy: PipelinePolicy = PipelinePolicy()
) -> Milestones:
    """NBM and qualified dates: the first moment the stage reached 1+ and 2+.

    A skipped stage counts as reached (1 straight to 3 qualifies at the move to 3); going
    back to an earlier stage takes nothing away, and coming forward again moves nothing.
    An opportunity created at stage 1 or beyond has its NBM at creation.
    """
    marks = Milestones(None, None)
    for i, version in enumerate(versions):
        marks = next_milestones(marks, version, first=i == 0, policy=policy)
    return marks


def next_milestones(
    marks: Milestones, version: OpportunityVersion, *, first: bool, policy: PipelinePolicy
) -> Milestones:
    """The milestones once ``version`` (the latest) is added to the history."""
    if version.stage is None:
        return marks
    at = version.at
    if first and version.created_at is not None:
        at = min(at, version.created_at)
    nbm_at, qualified_at = marks.nbm_at, marks.qualified_at
    if nbm_at is None and version.stage.reaches(policy.nbm_stage):
        nbm_at = at
    if qualified_at is None and version.stage.reaches(policy.qualified_stage):
        qualified_at = at
    return Milestones(nbm_at, qualified_at)


def as_of(versions: Sequence[OpportunityVersion], moment: datetime) -> OpportunityVersion | None:
    """The version in force at ``moment`` (a change at exactly ``moment`` counts)."""
    i = bisect_right([v.at for v in versions], moment)
    return versions[i - 1] if i else None


def cycle_time(
    version: OpportunityVersion, marks: Milestones, moment: datetime | None = None
) -> timedelta | None:
    """Qualified to closed, for an opportunity closed (as of ``moment``) after qualifying."""
    if version.closed_at is None or marks.qualified_at is None:
        return None
    if moment is not None and (version.closed_at > moment or marks.qualified_at > moment):
        return None
    return max(version.closed_at - marks.qualified_at, timedelta(0))
