"""Credentials for the CRMs, in one place: one settings naming and one way to call each
CRM, used by the backfill, the roster sync and the write-backs.

Salesforce (``SALESFORCE_*``), the first that is configured wins:
- OAuth 2.0 JWT bearer: ``SALESFORCE_CLIENT_ID`` (the connected app's consumer key),
  ``SALESFORCE_USERNAME`` and ``SALESFORCE_PRIVATE_KEY_FILE`` (PEM; the app holds its
  certificate).
- OAuth 2.0 client credentials: ``SALESFORCE_CLIENT_ID`` and ``SALESFORCE_CLIENT_SECRET``
  (the app's run-as user acts).
- A fixed ``SALESFORCE_ACCESS_TOKEN`` with ``SALESFORCE_INSTANCE_URL`` (e.g. from
  ``sf org display``): never refreshed.
An OAuth token is fetched from ``SALESFORCE_LOGIN_URL`` when first needed, fetched again
after ``SALESFORCE_TOKEN_LIFETIME_S`` (Salesforce does not say when a session ends: it is
the org's session timeout) and at once when Salesforce answers 401 (then the call is
made once more).

HubSpot: a private app's ``HUBSPOT_ACCESS_TOKEN`` (it does not expire).

A refused credential raises ``CredentialError``, whose message is the one line to show.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator
from pathlib import Path

import httpx
import jwt
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_VERSION = "v61.0"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class CredentialError(Exception):
    """A CRM refused or lacks our credentials; the message says which and what to set."""


class CrmSettings(BaseSettings):
    """The CRM settings every process shares (env var = field name upper-cased)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    salesforce_login_url: str = "https://login.salesforce.com"
    salesforce_instance_url: str | None = None
    salesforce_api_version: str = DEFAULT_API_VERSION
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_access_token: SecretStr | None = None
    salesforce_token_lifetime_s: float = Field(default=3600, gt=0)
    hubspot_api_base: str = "https://api.hubapi.com"
    hubspot_access_token: SecretStr | None = None

    @property
    def salesforce_configured(self) -> bool:
        return self.salesforce_grant() != "none"

    def salesforce_grant(self) -> str:
        """Which way of signing in the settings give: jwt, client_credentials, token, none."""
        if (
            self.salesforce_client_id
            and self.salesforce_username
            and self.salesforce_private_key_file
        ):
            return "jwt"
        if self.salesforce_client_id and self.salesforce_client_secret:
            return "client_credentials"
        if self.salesforce_access_token and self.salesforce_instance_url:
            return "token"
        return "none"


class SalesforceAuth(httpx.Auth):
    """Signs every call with a Salesforce session, fetching one when there is none, when
    it is older than the configured lifetime, or when Salesforce answers 401.

    ``instance_url`` is where the org's API answers: from the token response (OAuth) or
    the settings (a fixed token). One object per process, shared by its clients."""

    requires_response_body = True

    def __init__(self, settings: CrmSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._grant = settings.salesforce_grant()
        self._clock = clock
        self._token: str | None = None
        self._fetched_at = 0.0
        self.instance_url = (settings.salesforce_instance_url or "").rstrip("/")
        self.refreshes = 0  # sessions fetched, for the run's summary
        self.org_id: str | None = None  # from an OAuth sign-in's identity URL
        if self._grant == "none":
            raise CredentialError(
                "Salesforce is not configured: set SALESFORCE_CLIENT_ID with "
                "SALESFORCE_USERNAME and SALESFORCE_PRIVATE_KEY_FILE (JWT bearer) or with "
                "SALESFORCE_CLIENT_SECRET (client credentials), or SALESFORCE_INSTANCE_URL "
                "with SALESFORCE_ACCESS_TOKEN"
            )
        if self._grant == "token":
            assert settings.salesforce_access_token is not None
            self._token = settings.salesforce_access_token.get_secret_value()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._stale():
            self._store((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code != 401:
            return
        if self._grant == "token":
            raise CredentialError(
                f"Salesforce refused SALESFORCE_ACCESS_TOKEN ({_salesforce_error(response)}): "
                "it has expired or been revoked; set a new one, or configure a connected app "
                "(SALESFORCE_CLIENT_ID) so sessions are renewed"
            )
        # The session ended before its lifetime (revoked, or a shorter org timeout).
        self._store((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            raise CredentialError(
                f"Salesforce refused a session it had just given ({_salesforce_error(response)})"
                ": check the connected app's OAuth scopes (api, and refresh_token for JWT)"
            )

    async def sign_in(self, client: httpx.AsyncClient) -> str:
        """The org's API address, signing in first when no session is held yet (the
        address of an OAuth sign-in comes with its token). ``client`` must not sign."""
        if self._stale() or not self.instance_url:
            # Not through this auth: the token call signs nothing.
            self._store(await client.send(self.token_request(), auth=None))
        if not self.instance_url:
            raise CredentialError("SALESFORCE_INSTANCE_URL is not set")
        return self.instance_url

    async def session(self, client: httpx.AsyncClient) -> tuple[str, str]:
        """The session token and the org's API address, for a caller that signs its own
        calls (the Pub/Sub API's gRPC metadata). ``client`` must not sign."""
        instance_url = await self.sign_in(client)
        assert self._token is not None
        return self._token, instance_url

    def renew(self) -> None:
        """Fetch a new session before the next call: the caller's was refused. A fixed
        token cannot be renewed, so its refusal is the one line to show."""
        if self._grant == "token":
            raise CredentialError(
                "Salesforce refused SALESFORCE_ACCESS_TOKEN: it has expired or been revoked; "
                "set a new one, or configure a connected app (SALESFORCE_CLIENT_ID) so "
                "sessions are renewed"
            )
        self._token = None

    def _stale(self) -> bool:
        if self._token is None:
            return True
        if self._grant == "token":
            return False
        return self._clock() - self._fetched_at >= self._settings.salesforce_token_lifetime_s

    def token_request(self) -> httpx.Request:
        s = self._settings
        url = f"{s.salesforce_login_url.rstrip('/')}/services/oauth2/token"
        if self._grant == "jwt":
            form = {"grant_type": JWT_BEARER, "assertion": self._assertion()}
        else:
            assert s.salesforce_client_secret is not None and s.salesforce_client_id
            form = {
                "grant_type": "client_credentials",
                "client_id": s.salesforce_client_id,
                "client_secret": s.salesforce_client_secret.get_secret_value(),
            }
        return httpx.Request("POST", url, data=form)

    def _assertion(self) -> str:
        s = self._settings
        assert s.salesforce_private_key_file is not None
        try:
            key = s.salesforce_private_key_file.read_text()
        except OSError as exc:
            raise CredentialError(
                f"SALESFORCE_PRIVATE_KEY_FILE cannot be read: {exc.strerror}: "
                f"{s.salesforce_private_key_file}"
            ) from None
        claims = {
            "iss": s.salesforce_client_id,
            "sub": s.salesforce_username,
            "aud": s.salesforce_login_url.rstrip("/"),
            # Salesforce accepts an assertion for at most 3 minutes.
            "exp": int(time.time()) + 180,
            "jti": uuid.uuid4().hex,
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError) as exc:
            raise CredentialError(
                f"SALESFORCE_PRIVATE_KEY_FILE is not an RSA private key in PEM: {exc}"
            ) from None

    def _store(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise CredentialError(
                f"Salesforce refused the {self._grant.replace('_', ' ')} sign-in at "
                f"{self._settings.salesforce_login_url} ({_salesforce_error(response)}): "
                + _hint(self._grant)
            )
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise CredentialError(
                f"Salesforce's token answer has no access_token: {response.text[:200]}"
            ) from None
        self._token = token
        self._fetched_at = self._clock()
        self.refreshes += 1
        if isinstance(body.get("instance_url"), str):
            self.instance_url = body["instance_url"].rstrip("/")
        # The identity URL ends in /id/<org id>/<user id>.
        parts = str(body.get("id") or "").rstrip("/").split("/")
        if len(parts) >= 3 and parts[-3] == "id":
            self.org_id = salesforce_id18(parts[-2])


def _hint(grant: str) -> str:
    if grant == "jwt":
        return (
            "check SALESFORCE_CLIENT_ID (the consumer key), SALESFORCE_USERNAME, that the "
            "app holds the certificate of SALESFORCE_PRIVATE_KEY_FILE and that the user is "
            "pre-authorised (admin approved users)"
        )
    return (
        "check SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET, that the app enables the "
        "client credentials flow with a run-as user, and that SALESFORCE_LOGIN_URL is the "
        "org's My Domain URL"
    )


def _salesforce_error(response: httpx.Response) -> str:
    """Salesforce's own words: ``error``/``error_description`` (OAuth) or the first
    ``errorCode``/``message`` (REST)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('error')}: {body.get('error_description', '')}".rstrip(": ")
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return f"{body[0].get('errorCode')}: {body[0].get('message', '')}"
    return f"HTTP {response.status_code}"


class HubSpotAuth(httpx.Auth):
    """A private app's token on every call; a 401 means the token is wrong or revoked."""

    def __init__(self, settings: CrmSettings) -> None:
        if settings.hubspot_access_token is None:
            raise CredentialError(
                "HubSpot is not configured: set HUBSPOT_ACCESS_TOKEN to a private app's "
                "access token"
            )
        self._token = settings.hubspot_access_token.get_secret_value()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            raise CredentialError(
                "HubSpot refused HUBSPOT_ACCESS_TOKEN (401): copy the private app's current "
                "access token (it changes when rotated)"
            )


def salesforce_client(
    settings: CrmSettings, auth: SalesforceAuth | None = None, timeout_s: float = 30
) -> httpx.AsyncClient:
    return httpx.AsyncClient(auth=auth or SalesforceAuth(settings), timeout=timeout_s)


def hubspot_client(settings: CrmSettings, timeout_s: float = 30) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=HubSpotAuth(settings),
        base_url=settings.hubspot_api_base.rstrip("/"),
        timeout=timeout_s,
    )


def salesforce_id18(record_id: str) -> str:
    """The 18-character, case-insensitive form of a Salesforce id (15 characters get the
    checksum suffix; 18 are returned as they are). Compare ids only in this form."""
    if len(record_id) != 15:
        return record_id
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    suffix = ""
    for chunk in (record_id[0:5], record_id[5:10], record_id[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += alphabet[bits]
    return record_id + suffix
