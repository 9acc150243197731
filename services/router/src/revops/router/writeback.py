"""Owner write-back to the CRM a lead came from, delivered from the outbox.

HubSpot: ``PATCH /crm/v3/objects/contacts/{id}`` with ``{"properties":
{"hubspot_owner_id": ...}}``. Salesforce: ``PATCH /services/data/vXX.X/sobjects/Lead/{id}``
with ``{"OwnerId": ...}``. A 429 (or 503) with ``Retry-After`` asks the relay to come back
after that long; other failures back off exponentially in the relay, which finally marks
the row failed (listed by ``GET /writebacks`` and counted in the outbox metrics). Routing
never waits for any of it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from revops.events.outbox import OutboxMessage, RetryLater
from revops.router.settings import RouterSettings


class WritebackError(Exception):
    pass


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class CrmWriteback:
    def __init__(self, settings: RouterSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.writeback_timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def hubspot_owner(self, message: OutboxMessage) -> None:
        body = json.loads(message.value)
        token = self._settings.hubspot_token
        if token is None:
            raise WritebackError("HUBSPOT_TOKEN is not configured")
        base = self._settings.hubspot_api_base.rstrip("/")
        url = f"{base}/crm/v3/objects/contacts/{body['object_id']}"
        response = await self._client.patch(
            url,
            json={"properties": {"hubspot_owner_id": body["owner_id"]}},
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )
        self._check(response, "HubSpot")

    async def salesforce_owner(self, message: OutboxMessage) -> None:
        body = json.loads(message.value)
        token = self._settings.salesforce_token
        base = self._settings.salesforce_instance_url
        if token is None or not base:
            raise WritebackError("SALESFORCE_INSTANCE_URL / SALESFORCE_TOKEN are not configured")
        version = self._settings.salesforce_api_version
        url = f"{base.rstrip('/')}/services/data/{version}/sobjects/Lead/{body['object_id']}"
        response = await self._client.patch(
            url,
            json={"OwnerId": body["owner_id"]},
            headers={"Authorization": f"Bearer {token.get_secret_value()}"},
        )
        self._check(response, "Salesforce")

    @staticmethod
    def _check(response: httpx.Response, system: str) -> None:
        if response.is_success:
            return
        detail = response.text[:300]
        if response.status_code in (429, 503):
            raise RetryLater(
                f"{system} answered {response.status_code}: {detail}",
                retry_after_s(response.headers.get("Retry-After")),
            )
        raise WritebackError(f"{system} answered {response.status_code}: {detail}")
