"""The router's write-back reads: owner changes sent to the CRMs, by default the ones that
gave up, with why."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import Select, select

from revops.events.contract import Page, read_page
from revops.events.service import NEEDS_A_TOKEN, Limit, Offset, ReadAccess, SessionDep
from revops.router import models as m

router = APIRouter(responses=NEEDS_A_TOKEN, tags=["write-back"])


class WritebackOut(BaseModel):
    event_id: str = Field(description="the routing event whose owner is written back")
    destination: str = Field(description="the CRM it goes to: hubspot_owner or salesforce_owner")
    lead_id: str = Field(description="the router's id of the lead")
    attempts: int = Field(description="calls made to the CRM so far")
    last_error: str | None = Field(description="why the last call failed; null: none did")
    failed_at: datetime | None = Field(description="when it gave up; null: it has not")
    sent_at: datetime | None = Field(description="when the CRM took it; null: not yet")
    next_attempt_at: datetime = Field(description="when the next call is due, if one is")


class WritebackPage(Page[WritebackOut]):
    """A page of owner write-backs, in the order they were queued."""


WritebackStatus = Literal["failed", "pending", "sent", "all"]


def writebacks_query(status: WritebackStatus) -> Select[Any]:
    """The write-backs of a status (the outbox's write-back index serves each)."""
    outbox = m.outbox.c
    query = select(m.outbox).where(m.WRITEBACKS)
    if status == "failed":
        query = query.where(outbox.failed_at.is_not(None))
    elif status == "pending":
        query = query.where(outbox.sent_at.is_(None), outbox.failed_at.is_(None))
    elif status == "sent":
        query = query.where(outbox.sent_at.is_not(None))
    return query


@router.get("/writebacks", dependencies=[ReadAccess])
async def list_writebacks(
    session: SessionDep,
    status: WritebackStatus = "failed",
    limit: Limit = 100,
    offset: Offset = 0,
) -> WritebackPage:
    """Owner write-backs to the CRMs; by default the ones that gave up."""
    query = writebacks_query(status)
    rows, total = await read_page(session, query, [m.outbox.c.id], limit, offset)
    items = [
        WritebackOut(
            event_id=r.event_id,
            destination=r.destination,
            lead_id=r.key,
            attempts=r.attempts,
            last_error=r.last_error,
            failed_at=r.failed_at,
            sent_at=r.sent_at,
            next_attempt_at=r.next_attempt_at,
        )
        for r in rows
    ]
    return WritebackPage(items=items, total=total, limit=limit, offset=offset)
