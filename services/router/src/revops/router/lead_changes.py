"""What CRM changes do to existing leads (their CRM ids, status, first status change)
and the owner write-backs they queue, written a statement each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    func,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    LeadAeAssigned,
    SourceRef,
    derived_event_id,
)
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.journal import add_to_outbox
from revops.router.store import ref_columns


@dataclass
class LeadState:
    """A lead as the events of a batch leave it: loaded once, changed in memory
    (``LeadChanges``), written in one statement."""

    id: str
    email: str
    hubspot_id: str | None
    salesforce_id: str | None
    owner_id: str | None
    status: str | None
    created_at: datetime
    first_status_change_at: datetime | None
    changed: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> LeadState:
        return cls(
            row["id"],
            row["email"],
            row["hubspot_id"],
            row["salesforce_id"],
            row["owner_id"],
            row["status"],
            row["created_at"],
            row.get("first_status_change_at"),
        )


_LEAD_COLUMNS = ("hubspot_id", "salesforce_id", "status", "first_status_change_at")


class LeadChanges:
    """What a run of events changes on existing leads, and the owner write-backs it
    queues; ``write`` stores both, a statement each."""

    def __init__(self, ctx: RouterContext) -> None:
        self.ctx = ctx
        self.leads: dict[str, LeadState] = {}
        self.writebacks: list[dict[str, Any]] = []

    def attach(self, lead: LeadState, ref: SourceRef | None) -> list[str]:
        """The lead's ids in the CRMs it was not known by yet, and the owner written back
        there; returns the columns set."""
        columns = {k: v for k, v in ref_columns(ref).items() if getattr(lead, k) is None}
        if not columns:
            return []
        for column, value in columns.items():
            setattr(lead, column, value)
            lead.changed.add(column)
        self.leads[lead.id] = lead
        if ref is not None and lead.owner_id is not None:
            self.writeback(lead.id, ref, lead.owner_id)
        return list(columns)

    def status(self, lead: LeadState, status: str, at: datetime) -> None:
        """The status, and the first change away from "new" (the SLA's clock)."""
        lead.status = status
        lead.changed.add("status")
        if status.strip().lower() != "new" and at >= lead.created_at:
            first = lead.first_status_change_at
            lead.first_status_change_at = at if first is None else min(first, at)
            lead.changed.add("first_status_change_at")
        self.leads[lead.id] = lead

    def writeback(
        self, lead_id: str, ref: SourceRef, owner_id: str, at: datetime | None = None
    ) -> None:
        """The owner to the CRM the lead is known in, if write-back to it is configured.
        ``at``: when a later owner change (a transfer, a re-route) was made, so each
        change is a row of its own while a replay of it is the same row."""
        destination = self.ctx.writeback_destinations().get(ref.system)
        if destination is None:
            return
        when = () if at is None else (at.isoformat(),)
        event_id = derived_event_id("router", destination, ref.object_id, owner_id, *when)
        self.writebacks.append(owner_writeback(event_id, destination, ref, owner_id, lead_id))

    async def write(self, session: AsyncSession) -> None:
        if self.leads:
            # Only what changed is written (None keeps the stored value), as one at a time.
            await session.execute(
                update(m.leads)
                .where(m.leads.c.id == sa.bindparam("lead_id"))
                .values(
                    {
                        c: func.coalesce(
                            sa.bindparam(f"new_{c}", type_=m.leads.c[c].type), m.leads.c[c]
                        )
                        for c in _LEAD_COLUMNS
                    }
                ),
                [
                    {
                        "lead_id": lead.id,
                        **{
                            f"new_{c}": getattr(lead, c) if c in lead.changed else None
                            for c in _LEAD_COLUMNS
                        },
                    }
                    for lead in self.leads.values()
                ],
            )
        if self.writebacks:
            await add_to_outbox(session, self.writebacks)
        self.leads, self.writebacks = {}, []


def owner_writeback(
    event_id: str, destination: str, ref: SourceRef, owner_id: str, key: str
) -> dict[str, Any]:
    """An outbox row setting the owner of the CRM record ``ref`` to our rep ``owner_id``
    (the sender puts the rep's user in that CRM)."""
    value = {"object_type": ref.object_type, "object_id": ref.object_id, "owner_id": owner_id}
    return {
        "event_id": event_id,
        "destination": destination,
        "topic": "",
        "key": key,
        "value": json.dumps(value).encode(),
    }


def lead_refs(hubspot_id: str | None, salesforce_id: str | None) -> list[SourceRef]:
    """The CRM records a lead is known as (its owner is written to each)."""
    refs = []
    if hubspot_id:
        refs.append(SourceRef(system="hubspot", object_type="contact", object_id=hubspot_id))
    if salesforce_id:
        refs.append(SourceRef(system="salesforce", object_type="Lead", object_id=salesforce_id))
    return refs


def opportunity_owner_writebacks(
    ctx: RouterContext, assigned: LeadAeAssigned
) -> list[dict[str, Any]]:
    """The converted opportunity's owner set to the AE assigned, in the CRM the conversion
    came from: a Salesforce Opportunity, or a HubSpot deal. Nothing without an AE or an
    opportunity, or when write-back to that CRM is not configured."""
    if assigned.ae_id is None or assigned.opportunity_id is None:
        return []
    system = assigned.source_ref.system if assigned.source_ref is not None else "salesforce"
    destination = ctx.writeback_destinations().get(system)
    if destination is None:
        return []
    object_type = "deal" if system == "hubspot" else "Opportunity"
    ref = SourceRef(system=system, object_type=object_type, object_id=assigned.opportunity_id)
    event_id = derived_event_id(
        "router",
        destination,
        object_type,
        assigned.opportunity_id,
        assigned.ae_id,
        assigned.conversion_id,
    )
    return [owner_writeback(event_id, destination, ref, assigned.ae_id, assigned.lead_id)]
