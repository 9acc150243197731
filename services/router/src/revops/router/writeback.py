"""Owner write-back to the CRMs, delivered from the outbox: a lead's owner (routed,
re-routed, moved by a transfer) and a converted opportunity's AE.

HubSpot: ``PATCH /crm/v3/objects/contacts/{id}`` (a deal: ``.../deals/{id}``) with
``{"properties": {"hubspot_owner_id": ...}}``. Salesforce:
``PATCH /services/data/vXX.X/sobjects/Lead/{id}`` (an opportunity: ``.../Opportunity/{id}``)
with ``{"OwnerId": ...}``. The outbox row names our rep; the rep's id in that CRM
(``reps.hubspot_owner_id`` / ``reps.salesforce_user_id``) is read when the row is sent, so
a rep whose CRM id is set later gets the next write-back right. A rep without one (or an
unknown rep) fails the row at once, saying what to set; ``requeue_writebacks_of`` puts the
rep's failed rows back once it is set.

A 429, or any answer with ``Retry-After``, asks the relay to come back after that long
without counting a failure; other failures back off exponentially in the relay, which
finally marks the row failed (listed by ``GET /writebacks`` and counted in the outbox
metrics). Routing never waits for any of it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.crm import CredentialError, HubSpotAuth, SalesforceAuth
from revops.events.db import Database, one_of
from revops.events.outbox import OutboxMessage, RetryLater, Undeliverable, requeue_failed
from revops.events.retry_after import retry_after_s
from revops.router import models as m
from revops.router.context import HUBSPOT_OWNER, SALESFORCE_OWNER
from revops.router.settings import RouterSettings

CrmField = Literal["hubspot_owner_id", "salesforce_user_id"]


class WritebackError(Exception):
    pass


@dataclass(frozen=True)
class CrmIds:
    """A rep's user in each CRM (None where not set)."""

    hubspot_owner_id: str | None = None
    salesforce_user_id: str | None = None


# Our rep id -> the rep's CRM ids, or None for an unknown rep.
RepLookup = Callable[[str], Awaitable[CrmIds | None]]


def reps_in(database: Database) -> RepLookup:
    """Read a rep's CRM ids from ``router.reps``, one short query per write-back: read at
    send time, a change through the API applies to the very next one."""

    async def lookup(rep_id: str) -> CrmIds | None:
        async with database.transaction() as session:
            row = (
                await session.execute(
                    select(m.reps.c.hubspot_owner_id, m.reps.c.salesforce_user_id).where(
                        m.reps.c.id == rep_id
                    )
                )
            ).first()
        return None if row is None else CrmIds(row.hubspot_owner_id, row.salesforce_user_id)

    return lookup


class CrmWriteback:
    """The outbox senders of the owner write-back. ``reps`` finds a rep's CRM ids; by
    default a pool of two connections to the router's database of its own (the sender is
    built before the service's runtime, whose pool the consumer keeps busy)."""

    def __init__(
        self,
        settings: RouterSettings,
        client: httpx.AsyncClient | None = None,
        *,
        reps: RepLookup | None = None,
    ) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.writeback_timeout_s)
        self._database: Database | None = None
        if reps is None:
            self._database = Database(settings.resolved_database_url(), m.SCHEMA, pool_size=2)
            reps = reps_in(self._database)
        self._reps = reps
        # One session per process, renewed on expiry or 401 (revops.events.crm).
        self._hubspot = HubSpotAuth(settings) if settings.hubspot_access_token else None
        self._salesforce = SalesforceAuth(settings) if settings.salesforce_configured else None

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._database is not None:
            await self._database.dispose()

    async def hubspot_owner(self, message: OutboxMessage) -> None:
        body = json.loads(message.value)
        if self._hubspot is None:
            raise WritebackError("HUBSPOT_ACCESS_TOKEN is not configured")
        owner = await self._crm_owner(body["owner_id"], "hubspot_owner_id")
        base = self._settings.hubspot_api_base.rstrip("/")
        # A converted opportunity's owner is the deal's; a lead's, the contact's.
        kind = "deals" if body["object_type"].lower() in ("deal", "deals") else "contacts"
        url = f"{base}/crm/v3/objects/{kind}/{body['object_id']}"
        properties = {"properties": {"hubspot_owner_id": owner}}
        try:
            response = await self._client.patch(url, json=properties, auth=self._hubspot)
        except CredentialError as exc:
            raise WritebackError(str(exc)) from None
        self._check(response, "HubSpot")

    async def salesforce_owner(self, message: OutboxMessage) -> None:
        body = json.loads(message.value)
        if self._salesforce is None:
            raise WritebackError("Salesforce credentials are not configured (SALESFORCE_*)")
        owner = await self._crm_owner(body["owner_id"], "salesforce_user_id")
        version = self._settings.salesforce_api_version
        # A converted opportunity's owner is the Opportunity's; a lead's, the Lead's.
        kind = "Opportunity" if body["object_type"].lower() == "opportunity" else "Lead"
        try:
            base = await self._salesforce.sign_in(self._client)
            url = f"{base}/services/data/{version}/sobjects/{kind}/{body['object_id']}"
            response = await self._client.patch(url, json={"OwnerId": owner}, auth=self._salesforce)
        except CredentialError as exc:
            raise WritebackError(str(exc)) from None
        self._check(response, "Salesforce")

    async def _crm_owner(self, rep_id: str, field: CrmField) -> str:
        """The rep's id in the CRM; without one no retry can help, so the row fails now."""
        ids = await self._reps(rep_id)
        if ids is None:
            raise Undeliverable(
                f"rep {rep_id} is unknown: add it with POST /reps, with its {field}"
            )
        owner = getattr(ids, field)
        if not owner:
            raise Undeliverable(f"rep {rep_id} has no {field}: set it with PATCH /reps/{rep_id}")
        return str(owner)

    @staticmethod
    def _check(response: httpx.Response, system: str) -> None:
        if response.is_success:
            return
        detail = response.text[:300]
        wait_s = retry_after_s(response.headers.get("Retry-After"))
        # "Later", not "failed": the relay asks again then, without counting an attempt.
        # A 503 without a wait is an outage like any other and counts.
        if response.status_code == 429 or wait_s is not None:
            raise RetryLater(f"{system} answered {response.status_code}: {detail}", wait_s)
        raise WritebackError(f"{system} answered {response.status_code}: {detail}")


async def requeue_writebacks_of(session: AsyncSession, rep_id: str) -> int:
    """Put the rep's failed write-backs back in the queue (after its CRM ids were set);
    returns how many. They are sent with the ids the rep has when they go out."""
    outbox = m.metadata.tables[f"{m.SCHEMA}.outbox"]
    owner = func.convert_from(outbox.c.value, "UTF8").cast(JSONB)["owner_id"].astext
    return await requeue_failed(
        session,
        outbox,
        one_of(outbox.c.destination, [HUBSPOT_OWNER, SALESFORCE_OWNER]),
        owner == rep_id,
    )
