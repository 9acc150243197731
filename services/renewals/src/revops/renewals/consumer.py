"""The consumer: opportunity changes into the stage history and renewals; account
changes into tiers and onboardings.

The batch handler applies a batch's opportunity changes together: one read of the
batch's opportunities, one write of their new history rows, one upsert of their latest
state, one read of their renewals. If anything in it fails, the runner rolls the batch
back and applies it again one event at a time with the per-event handler (the same code
with one change), so a bad event only costs itself.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from revops.events.catalogue import (
    AccountChangedEvent,
    Event,
    OpportunityChangedEvent,
    RenewalCreated,
    RenewalCreatedEvent,
    derived_event_id,
    make_event,
)
from revops.events.codec import encode_event
from revops.events.consumer import BatchHandler, Handler
from revops.events.db import one_of
from revops.renewals import models as m
from revops.renewals.accounts import on_accounts_changed
from revops.renewals.domain.pipeline import (
    Milestones,
    OpportunityChange,
    OpportunityVersion,
    apply_change,
    fold,
    milestones,
    next_milestones,
    ordered,
)
from revops.renewals.domain.renewals import (
    ExistingRenewal,
    RenewalPlan,
    RenewalStatus,
    WonOpportunity,
    decide_renewal,
)
from revops.renewals.figures import count_created
from revops.renewals.history import (
    change_from_event,
    change_from_json,
    history_row,
    opportunity_row,
    renewable,
    version_from_row,
)
from revops.renewals.settings import RenewalsSettings

log = logging.getLogger(__name__)

SALESFORCE_RENEWAL = "salesforce_renewal"  # the outbox destination of CRM creations
_CHUNK = 1000
Changes = dict[str, list[OpportunityChange]]


def make_handlers(settings: RenewalsSettings) -> tuple[Handler, BatchHandler]:
    applier = OpportunityApplier(settings)

    async def handle_batch(session: AsyncSession, events: list[Event]) -> None:
        changes: Changes = defaultdict(list)
        accounts: list[AccountChangedEvent] = []
        for event_ in events:
            match event_:
                case OpportunityChangedEvent() if event_.payload.change != "deleted":
                    changes[event_.payload.opportunity_id].append(change_from_event(event_))
                case AccountChangedEvent():
                    accounts.append(event_)
                case _:
                    pass  # deleted opportunities and types this service does not need
        # Accounts and opportunities share no table: which goes first does not matter.
        await on_accounts_changed(session, accounts, settings)
        if changes:
            await session.run_sync(applier.apply, changes)

    async def handle(session: AsyncSession, event_: Event) -> None:
        await handle_batch(session, [event_])

    return handle, handle_batch


class OpportunityApplier:
    def __init__(self, settings: RenewalsSettings) -> None:
        self.settings = settings
        self.stages = settings.stage_map()
        self.pipeline_policy = settings.pipeline_policy()
        self.renewal_policy = settings.renewal_policy()
        self.zone = ZoneInfo(settings.company_timezone)
        self.outbox: Table = m.metadata.tables[f"{m.SCHEMA}.outbox"]

    # --- the batch -------------------------------------------------------------------

    def apply(self, session: Session, changes: Changes) -> None:
        """Runs in the batch's transaction (synchronously, through ``run_sync``)."""
        ids = sorted(changes)
        current = {
            r.opportunity_id: r
            for r in session.execute(
                select(m.opportunities).where(one_of(m.opportunities.c.opportunity_id, ids))
            )
        }
        late = [
            i
            for i in ids
            if i in current
            and min((c.at, c.event_id) for c in changes[i])
            < (current[i].last_at, current[i].last_event_id)
        ]
        stored = self._stored_changes(session, late)
        history: list[dict[str, Any]] = []
        superseded: list[dict[str, Any]] = []  # stored latest versions that now end
        latest: list[dict[str, Any]] = []
        outcomes: dict[str, list[OpportunityVersion]] = {}
        for opp_id in ids:
            if opp_id in stored:
                versions, rows, marks, last = self._rebuild(opp_id, stored[opp_id], changes[opp_id])
            else:
                row = current.get(opp_id)
                versions, rows, marks, last = self._advance(opp_id, row, changes[opp_id])
                if row is not None:
                    superseded.append({"b_event_id": row.last_event_id, "b_to": rows[0]["at"]})
            history.extend(_chained(rows))
            latest.append(opportunity_row(opp_id, last, versions[-1], marks, self.renewal_policy))
            outcomes[opp_id] = versions
        if late:
            session.execute(
                delete(m.opportunity_history).where(
                    one_of(m.opportunity_history.c.opportunity_id, late)
                )
            )
        for chunk in _chunks(history):
            session.execute(
                pg_insert(m.opportunity_history).on_conflict_do_nothing(
                    index_elements=["event_id"]
                ),
                chunk,
            )
        if superseded:
            h = m.opportunity_history
            session.execute(
                update(h)
                .where(h.c.event_id == bindparam("b_event_id"))
                .values(valid_to=bindparam("b_to")),
                superseded,
            )
        upsert = pg_insert(m.opportunities)
        upsert = upsert.on_conflict_do_update(
            index_elements=["opportunity_id"],
            set_={c.name: upsert.excluded[c.name] for c in m.opportunities.c if not c.primary_key},
        )
        for chunk in _chunks(latest):
            session.execute(upsert, chunk)
        self._renewals(session, outcomes)

    def _stored_changes(
        self, session: Session, opp_ids: list[str]
    ) -> dict[str, list[OpportunityChange]]:
        if not opp_ids:
            return {}
        h = m.opportunity_history
        found: dict[str, list[OpportunityChange]] = defaultdict(list)
        query = select(h.c.opportunity_id, h.c.event_id, h.c.at, h.c.change).where(
            one_of(h.c.opportunity_id, opp_ids)
        )
        for r in session.execute(query):
            found[r.opportunity_id].append(change_from_json(r.event_id, r.at, r.change))
        return found

    def _rebuild(
        self, opp_id: str, stored: list[OpportunityChange], new: list[OpportunityChange]
    ) -> tuple[list[OpportunityVersion], list[dict[str, Any]], Milestones, OpportunityChange]:
        # A late change: fold the whole history again, in the order things happened.
        known = {c.event_id for c in stored}
        everything = ordered([*stored, *(c for c in new if c.event_id not in known)])
        versions = fold(everything, self.stages)
        rows = [
            history_row(opp_id, c, v, self.renewal_policy)
            for c, v in zip(everything, versions, strict=True)
        ]
        return versions, rows, milestones(versions, self.pipeline_policy), everything[-1]

    def _advance(
        self, opp_id: str, row: Any, new: list[OpportunityChange]
    ) -> tuple[list[OpportunityVersion], list[dict[str, Any]], Milestones, OpportunityChange]:
        version = version_from_row(row) if row is not None else None
        marks = (
            Milestones(row.nbm_at, row.qualified_at) if row is not None else Milestones(None, None)
        )
        stage_name = version.stage.name if version and version.stage else None
        current = version or OpportunityVersion(at=datetime.min.replace(tzinfo=UTC))
        versions: list[OpportunityVersion] = [version] if version else []
        rows: list[dict[str, Any]] = []
        for change in ordered(new):
            if change.stage is not None:
                stage_name = change.stage
            first = not versions
            current = apply_change(current, change, stage_name, self.stages)
            marks = next_milestones(marks, current, first=first, policy=self.pipeline_policy)
            versions.append(current)
            rows.append(history_row(opp_id, change, current, self.renewal_policy))
        return versions, rows, marks, ordered(new)[-1]

    # --- renewals ----------------------------------------------------------------------

    def _renewals(self, session: Session, outcomes: dict[str, list[OpportunityVersion]]) -> None:
        r = m.renewals
        ids = list(outcomes)
        existing = {
            row.source_opportunity_id: row
            for row in session.execute(
                select(r).where(
                    or_(one_of(r.c.source_opportunity_id, ids), one_of(r.c.crm_opportunity_id, ids))
                )
            )
        }
        by_crm = {
            row.crm_opportunity_id: row for row in existing.values() if row.crm_opportunity_id
        }
        writes = _Writes()
        for opp_id, versions in outcomes.items():
            latest = versions[-1]
            if opp_id in by_crm:
                self._follow_renewal(session, by_crm[opp_id], latest)
            stored = existing.get(opp_id)
            if stored is None and not latest.is_won:
                continue
            self._decide(session, opp_id, versions, stored, writes)
        # New renewals and their outbox rows in two statements, whatever their number.
        if writes.renewals:
            session.execute(
                pg_insert(r).on_conflict_do_nothing(index_elements=["source_opportunity_id"]),
                writes.renewals,
            )
            count_created(session, len(writes.renewals))
        if writes.outbox:
            session.execute(
                pg_insert(self.outbox).on_conflict_do_nothing(index_elements=["event_id"]),
                writes.outbox,
            )

    def _decide(
        self,
        session: Session,
        opp_id: str,
        versions: list[OpportunityVersion],
        stored: Any,
        writes: _Writes,
    ) -> None:
        latest = versions[-1]
        won = None
        if latest.is_won and renewable(latest, self.renewal_policy):
            won_at = latest.closed_at or latest.at
            won = WonOpportunity(
                opportunity_id=opp_id,
                won_on=won_at.astimezone(self.zone).date(),
                account_id=latest.account_id,
                owner_id=latest.owner_id,
                amount=latest.amount,
                close_date=latest.close_date,
                contract_end_date=latest.contract_end_date,
                opportunity_type=latest.opportunity_type,
                pipeline=latest.pipeline,
                name=latest.name,
            )
        existing = (
            ExistingRenewal(
                stored.renewal_id, RenewalStatus(stored.status), stored.amount, stored.close_date
            )
            if stored is not None
            else None
        )
        decision = decide_renewal(won, existing, self.renewal_policy)
        r = m.renewals
        if decision.action == "keep":
            return
        if decision.action == "cancel":
            ended = _left_won_at(versions) or latest.at
            session.execute(
                update(r)
                .where(r.c.renewal_id == stored.renewal_id, r.c.status == RenewalStatus.OPEN.value)
                .values(
                    status=RenewalStatus.CANCELLED.value,
                    ended_at=ended,
                    updated_at=latest.at,
                    version=r.c.version + 1,
                )
            )
            self._sync_crm(writes, stored.renewal_id, "cancel", latest.at)
            return
        plan = decision.plan
        assert plan is not None and won is not None
        won_at = latest.closed_at or latest.at
        values = _plan_values(plan)
        if decision.action == "create":
            writes.renewals.append(
                {
                    **values,
                    "status": RenewalStatus.OPEN.value,
                    "created_at": won_at,
                    "updated_at": won_at,
                }
            )
        else:  # reinstate / update
            session.execute(
                update(r)
                .where(r.c.renewal_id == plan.renewal_id)
                .values(
                    **values,
                    status=RenewalStatus.OPEN.value,
                    ended_at=None,
                    updated_at=latest.at,
                    version=r.c.version + 1,
                )
            )
        if decision.action in ("create", "reinstate"):
            self._announce(writes, plan, won_at, decision.action)
        self._sync_crm(writes, plan.renewal_id, decision.action, latest.at)

    def _follow_renewal(self, session: Session, row: Any, latest: OpportunityVersion) -> None:
        """Our renewal, now a CRM opportunity of its own: its status follows it."""
        if row.status == RenewalStatus.CANCELLED.value:
            return
        status = RenewalStatus.OPEN
        if latest.stage is not None and latest.stage.is_closed:
            status = RenewalStatus.WON if latest.is_won else RenewalStatus.LOST
        if status.value == row.status:
            return
        r = m.renewals
        session.execute(
            update(r)
            .where(r.c.renewal_id == row.renewal_id)
            .values(
                status=status.value,
                ended_at=latest.closed_at if status is not RenewalStatus.OPEN else None,
                updated_at=latest.at,
            )
        )

    def _announce(self, writes: _Writes, plan: RenewalPlan, at: datetime, action: str) -> None:
        event_ = make_event(
            RenewalCreatedEvent,
            id=derived_event_id("renewal.created", plan.renewal_id, action, at.isoformat()),
            source="renewals",
            occurred_at=at,
            payload=RenewalCreated(
                renewal_id=plan.renewal_id,
                source_opportunity_id=plan.source_opportunity_id,
                account_id=plan.account_id,
                owner_id=plan.owner_id,
                amount=plan.amount,
                close_date=plan.close_date,
                status=RenewalStatus.OPEN.value,
            ),
        )
        # The library's add_event, as a row of a batch insert (same columns, same dedupe).
        writes.outbox.append(
            {
                "event_id": event_.id,
                "destination": "kafka",
                "topic": event_.topic.name(self.settings.topic_prefix),
                "key": event_.key,
                "value": encode_event(event_),
            }
        )

    def _sync_crm(self, writes: _Writes, renewal_id: str, action: str, at: datetime) -> None:
        if not self.settings.salesforce_enabled:
            return
        # The message only names the renewal: the sender sends its state at delivery
        # time, so a late or repeated delivery can never put an old state back.
        writes.outbox.append(
            {
                "event_id": derived_event_id(
                    "salesforce.renewal", renewal_id, action, at.isoformat()
                ),
                "destination": SALESFORCE_RENEWAL,
                "topic": "",
                "key": renewal_id,
                "value": json.dumps({"renewal_id": renewal_id, "action": action}).encode(),
            }
        )


@dataclass
class _Writes:
    renewals: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)


def _plan_values(plan: RenewalPlan) -> dict[str, Any]:
    return {
        "renewal_id": plan.renewal_id,
        "source_opportunity_id": plan.source_opportunity_id,
        "account_id": plan.account_id,
        "owner_id": plan.owner_id,
        "amount": plan.amount,
        "close_date": plan.close_date,
        "pipeline": plan.pipeline,
        "opportunity_type": plan.opportunity_type,
        "name": plan.name,
    }


def _left_won_at(versions: Sequence[OpportunityVersion]) -> datetime | None:
    left: datetime | None = None
    for before, after in pairwise(versions):
        if before.is_won and not after.is_won:
            left = after.at
    return left


def _chained(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each version of one opportunity ends where the next begins (the last never ends)."""
    for row, following in pairwise(rows):
        row["valid_to"] = following["at"]
    if rows:
        rows[-1]["valid_to"] = None
    return rows


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + _CHUNK] for i in range(0, len(rows), _CHUNK)]


__all__ = ["SALESFORCE_RENEWAL", "OpportunityApplier", "make_handlers"]
