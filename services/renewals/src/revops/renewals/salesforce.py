"""The renewal created in Salesforce through its REST API, delivered from the outbox.

``PATCH /services/data/vXX.X/sobjects/Opportunity/<Renewal_Key__c>/<renewal id>`` is
Salesforce's upsert by External ID: 201 when it created the record, 200 (or 204 on old
API versions) when it updated it. Keyed by our renewal id, a retried or repeated
delivery can never make a second opportunity. The message only names the renewal; its
current state is read at delivery, so a cancelled renewal is sent as cancelled even if
an older message is delivered late.

Failures: a 429 (or Salesforce's ``REQUEST_LIMIT_EXCEEDED``), or a 503 with
``Retry-After``, hands the wait to the outbox (``RetryLater``, which keeps the row and
honours the header); other 5xx and network errors are retried
here a few times with exponential backoff, then left to the outbox's own backoff; a 4xx
is an error the outbox records (and finally marks failed) for an operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from revops.events.crm import CredentialError, SalesforceAuth
from revops.events.db import Database
from revops.events.outbox import OutboxMessage, RetryLater
from revops.events.retry_after import retry_after_s
from revops.renewals import models as m
from revops.renewals.domain.renewals import RenewalStatus
from revops.renewals.settings import RenewalsSettings

log = logging.getLogger(__name__)


class SalesforceError(Exception):
    pass


def opportunity_fields(renewal: Any, settings: RenewalsSettings) -> dict[str, Any]:
    cancelled = renewal.status == RenewalStatus.CANCELLED.value
    fields: dict[str, Any] = {
        "Name": renewal.name,
        "AccountId": renewal.account_id,
        "OwnerId": renewal.owner_id,
        "Amount": float(renewal.amount) if renewal.amount is not None else None,
        "CloseDate": renewal.close_date.isoformat(),
        "StageName": settings.salesforce_cancelled_stage
        if cancelled
        else settings.salesforce_renewal_stage,
        "Type": renewal.opportunity_type,
    }
    if settings.salesforce_pipeline_field:
        fields[settings.salesforce_pipeline_field] = renewal.pipeline
    return {k: v for k, v in fields.items() if v is not None}


class SalesforceRenewals:
    def __init__(
        self,
        settings: RenewalsSettings,
        database: Database,
        client: httpx.AsyncClient | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        self._settings = settings
        self._database = database
        self._client = client or httpx.AsyncClient(timeout=settings.salesforce_timeout_s)
        self._backoff_s = backoff_s
        self._auth: SalesforceAuth | None = None  # signed in at the first call

    async def aclose(self) -> None:
        await self._client.aclose()

    def url(self, base: str, renewal_id: str) -> str:
        s = self._settings
        return (
            f"{base}/services/data/{s.salesforce_api_version}/sobjects/Opportunity/"
            f"{s.salesforce_renewal_key_field}/{renewal_id}"
        )

    async def send(self, message: OutboxMessage) -> None:
        renewal_id = json.loads(message.value)["renewal_id"]
        async with self._database.transaction() as session:
            renewal = (
                await session.execute(
                    select(m.renewals).where(m.renewals.c.renewal_id == renewal_id)
                )
            ).first()
        if renewal is None:
            raise SalesforceError(f"renewal {renewal_id} is not in the database")
        crm_id = await self.upsert(renewal_id, opportunity_fields(renewal, self._settings))
        async with self._database.transaction() as session:
            await session.execute(
                update(m.renewals)
                .where(m.renewals.c.renewal_id == renewal_id)
                .values(crm_opportunity_id=crm_id, crm_synced_at=datetime.now(UTC))
            )

    async def upsert(self, renewal_id: str, fields: dict[str, Any]) -> str | None:
        try:
            if self._auth is None:
                self._auth = SalesforceAuth(self._settings)
            base = await self._auth.sign_in(self._client)
        except CredentialError as exc:
            raise SalesforceError(str(exc)) from None
        last_error = ""
        for attempt in range(self._settings.salesforce_tries):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._client.patch(
                    self.url(base, renewal_id), json=fields, auth=self._auth
                )
            except CredentialError as exc:
                raise SalesforceError(str(exc)) from None
            except httpx.TransportError as exc:
                last_error = f"{exc.__class__.__name__}: {exc}"
                continue
            if response.status_code in (200, 201):
                body = response.json()
                crm_id = body.get("id") if isinstance(body, dict) else None
                return str(crm_id) if crm_id else None
            if response.status_code == 204:
                return None  # updated, on API versions that answer without a body
            wait = retry_after_s(response.headers.get("Retry-After"))
            throttled = response.status_code == 429 or _limit_exceeded(response)
            if throttled or (response.status_code == 503 and wait is not None):
                raise RetryLater(f"Salesforce answered {response.status_code}", wait)
            last_error = f"Salesforce answered {response.status_code}: {response.text[:500]}"
            if response.status_code < 500:
                raise SalesforceError(last_error)  # ours to fix: retrying will not help
        raise SalesforceError(last_error)


def _limit_exceeded(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    try:
        errors = response.json()
    except ValueError:
        return False
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("errorCode") == "REQUEST_LIMIT_EXCEEDED" for e in errors
    )
