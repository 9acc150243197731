"""Credentials in one place: Salesforce's JWT bearer and client credentials sign-ins,
sessions renewed on expiry and on 401, HubSpot's private-app token, and one clear line
for a wrong credential -- against the local fake of both CRMs' APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from typer.testing import CliRunner

from revops.events.cli import app as revops
from revops.events.crm import (
    CredentialError,
    CrmSettings,
    SalesforceAuth,
    hubspot_client,
    salesforce_client,
    salesforce_id18,
)
from revops.ingest.backfill.fake_crm import FakeOrg, serving

QUERY = "/services/data/v61.0/query"


@pytest.fixture
async def org() -> AsyncIterator[FakeOrg]:
    async with serving(FakeOrg(accounts=3)) as fake:
        yield fake


def key_pair(tmp_path: Path) -> tuple[Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "server.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def client_credentials(org: FakeOrg, **overrides: object) -> CrmSettings:
    values: dict[str, object] = {
        "salesforce_login_url": org.url,
        "salesforce_client_id": org.client_id,
        "salesforce_client_secret": SecretStr(org.client_secret),
    }
    values.update(overrides)
    return CrmSettings(**values)  # type: ignore[arg-type]


async def count_accounts(settings: CrmSettings, auth: SalesforceAuth) -> int:
    async with salesforce_client(settings, auth) as client:
        base = await auth.sign_in(client)
        response = await client.get(f"{base}{QUERY}", params={"q": "SELECT Id FROM Account"})
        response.raise_for_status()
        return int(response.json()["totalSize"])


async def test_jwt_bearer_signs_in_with_a_signed_assertion(org: FakeOrg, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path)
    org.public_key = public
    settings = CrmSettings(
        salesforce_login_url=org.url,
        salesforce_client_id=org.client_id,
        salesforce_username=org.username,
        salesforce_private_key_file=private,
    )
    auth = SalesforceAuth(settings)
    assert settings.salesforce_grant() == "jwt"
    assert await count_accounts(settings, auth) == 3
    assert org.tokens_issued == 1
    assert auth.instance_url == org.url  # from the token answer, not the settings
    assert auth.org_id == "00DFAKE"  # 7 characters: not an id to lengthen


async def test_a_jwt_for_another_user_is_refused_in_one_line(org: FakeOrg, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path)
    org.public_key = public
    settings = CrmSettings(
        salesforce_login_url=org.url,
        salesforce_client_id=org.client_id,
        salesforce_username="someone.else@example.com",
        salesforce_private_key_file=private,
    )
    with pytest.raises(CredentialError) as refused:
        await count_accounts(settings, SalesforceAuth(settings))
    message = str(refused.value)
    assert "user hasn't approved this consumer" in message
    assert "SALESFORCE_USERNAME" in message
    assert "\n" not in message


async def test_a_key_that_is_not_the_apps_is_refused(org: FakeOrg, tmp_path: Path) -> None:
    private, _ = key_pair(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_public = key_pair(tmp_path / "other")
    org.public_key = other_public
    settings = CrmSettings(
        salesforce_login_url=org.url,
        salesforce_client_id=org.client_id,
        salesforce_username=org.username,
        salesforce_private_key_file=private,
    )
    with pytest.raises(CredentialError, match="invalid assertion"):
        await count_accounts(settings, SalesforceAuth(settings))


async def test_a_wrong_client_secret_names_the_settings_to_check(org: FakeOrg) -> None:
    settings = client_credentials(org, salesforce_client_secret=SecretStr("wrong"))
    with pytest.raises(CredentialError) as refused:
        await count_accounts(settings, SalesforceAuth(settings))
    assert "invalid_client" in str(refused.value)
    assert "SALESFORCE_CLIENT_SECRET" in str(refused.value)


async def test_an_expired_session_is_renewed_and_the_call_made_again(org: FakeOrg) -> None:
    settings = client_credentials(org)
    auth = SalesforceAuth(settings)
    assert await count_accounts(settings, auth) == 3
    org.expire_sessions()  # Salesforce now answers 401 INVALID_SESSION_ID
    assert await count_accounts(settings, auth) == 3
    assert org.tokens_issued == 2
    assert auth.refreshes == 2


async def test_a_session_older_than_its_lifetime_is_renewed_before_the_call(org: FakeOrg) -> None:
    now = [1000.0]
    settings = client_credentials(org, salesforce_token_lifetime_s=60)
    auth = SalesforceAuth(settings, clock=lambda: now[0])
    await count_accounts(settings, auth)
    now[0] += 59.9
    await count_accounts(settings, auth)
    assert org.tokens_issued == 1  # still young
    now[0] += 0.1
    await count_accounts(settings, auth)
    assert org.tokens_issued == 2
    assert org.api_calls == 3  # no call was refused first


async def test_a_fixed_token_refused_says_it_cannot_be_renewed(org: FakeOrg) -> None:
    settings = CrmSettings(
        salesforce_instance_url=org.url, salesforce_access_token=SecretStr("00Dstale!token")
    )
    with pytest.raises(CredentialError) as refused:
        await count_accounts(settings, SalesforceAuth(settings))
    assert "SALESFORCE_ACCESS_TOKEN" in str(refused.value)
    assert "INVALID_SESSION_ID" in str(refused.value)


def test_no_salesforce_settings_say_what_to_set() -> None:
    with pytest.raises(CredentialError, match="SALESFORCE_CLIENT_ID"):
        SalesforceAuth(CrmSettings())


async def test_hubspot_private_app_token(org: FakeOrg) -> None:
    good = CrmSettings(hubspot_api_base=org.url, hubspot_access_token=SecretStr(org.hubspot_token))
    async with hubspot_client(good) as client:
        response = await client.get("/crm/v3/owners")
    assert response.status_code == 200
    assert len(response.json()["results"]) == org.users
    bad = good.model_copy(update={"hubspot_access_token": SecretStr("pat-na1-old")})
    async with hubspot_client(bad) as client:
        with pytest.raises(CredentialError, match="HUBSPOT_ACCESS_TOKEN"):
            await client.get("/crm/v3/owners")
    with pytest.raises(CredentialError, match="HUBSPOT_ACCESS_TOKEN"):
        hubspot_client(CrmSettings())


async def test_the_command_line_prints_one_line_for_a_wrong_credential(
    org: FakeOrg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No traceback: one line saying what was refused, and a failed exit."""
    monkeypatch.setenv("HUBSPOT_API_BASE", org.url)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-wrong")
    monkeypatch.setenv("BACKFILL_STATE_FILE", str(tmp_path / "checkpoints.json"))
    # In a thread: the fake answers from this test's event loop.
    result = await asyncio.to_thread(
        CliRunner().invoke, revops, ["backfill", "hubspot", "--dry-run"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    stopped = [line for line in result.output.splitlines() if line.startswith("stopped:")]
    assert len(stopped) == 1 and "HUBSPOT_ACCESS_TOKEN" in stopped[0], result.output


@pytest.mark.parametrize(
    ("short", "long"),
    [
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),  # Salesforce's documented example
        ("001000000000001", "001000000000001AAA"),
        ("001A0000006Vm9rIAC", "001A0000006Vm9rIAC"),  # already 18: as it is
        ("005E2ESAM", "005E2ESAM"),  # not an id: as it is
    ],
)
def test_salesforce_ids_in_their_18_character_form(short: str, long: str) -> None:
    assert salesforce_id18(short) == long


def test_15_and_18_character_ids_differ_only_in_case_sensitive_form() -> None:
    # Two ids equal but for case are two records: their 18-character forms differ.
    assert salesforce_id18("001A0000006vm9r") != salesforce_id18("001A0000006Vm9r")
