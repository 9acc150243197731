"""The production guard, on settings alone (no process, no network)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from revops.events.production import (
    UnsafeSettings,
    check_production,
    development_logins,
    development_secrets,
    is_loopback,
)
from revops.events.settings import ServiceSettings
from revops.ingest.settings import IngestSettings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com"])
def test_other_addresses_are_exposed(host):
    assert not is_loopback(host)


def test_the_development_tokens_are_named():
    assert development_secrets(ServiceSettings()) == ["API_TOKEN", "API_READ_TOKEN"]
    own = ServiceSettings(api_token=SecretStr("a-real-one"))
    assert development_secrets(own) == ["API_READ_TOKEN"]


def test_a_development_secret_among_rotated_ones_is_still_named():
    settings = IngestSettings(
        hubspot_client_secrets=[SecretStr("new-secret"), SecretStr("dev-hubspot-secret")],
    )
    assert "HUBSPOT_CLIENT_SECRETS" in development_secrets(settings)


def test_a_loopback_service_may_keep_the_development_secrets():
    check_production(ServiceSettings(http_host="127.0.0.1"))


def test_an_exposed_service_may_not():
    with pytest.raises(UnsafeSettings, match=r"HTTP_HOST=0\.0\.0\.0.*API_TOKEN, API_READ_TOKEN"):
        check_production(ServiceSettings(http_host="0.0.0.0"))


def test_production_on_loopback_may_not_either():
    with pytest.raises(UnsafeSettings, match=r"REVOPS_ENV=production.*API_READ_TOKEN"):
        check_production(
            ServiceSettings(revops_env="production", api_token=SecretStr("own-admin-token"))
        )


def test_own_secrets_pass_everywhere():
    check_production(
        ServiceSettings(
            http_host="0.0.0.0",
            revops_env="production",
            api_token=SecretStr("own-admin"),
            api_read_token=SecretStr("own-read"),
            database_url="postgresql+asyncpg://router:own-password@db:5432/revops",
        )
    )


OWN_TOKENS: dict[str, Any] = {
    "api_token": SecretStr("own-admin"),
    "api_read_token": SecretStr("own-read"),
}


@pytest.mark.parametrize(
    "url",
    [
        "",  # unset: the development login of the service's role
        "postgresql+asyncpg://router:router@db.internal:5432/revops",
        "postgresql://renewals:renewals@10.0.0.7/revops",
    ],
)
def test_a_development_database_login_is_refused_where_exposed(url):
    settings = ServiceSettings(
        service_name="router", http_host="0.0.0.0", database_url=url, **OWN_TOKENS
    )
    assert development_logins(settings) == ["DATABASE_URL"]
    with pytest.raises(UnsafeSettings, match=r"HTTP_HOST=0\.0\.0\.0.*but DATABASE_URL still holds"):
        check_production(settings)
    with pytest.raises(UnsafeSettings, match=r"REVOPS_ENV=production.*DATABASE_URL"):
        check_production(
            settings.model_copy(update={"http_host": "127.0.0.1", "revops_env": "production"})
        )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://router:Router@db:5432/revops",  # not the name, if close
        "postgresql+asyncpg://router:router-2026@db:5432/revops",
        "postgresql+asyncpg://router@db:5432/revops",  # no password: the server decides
    ],
)
def test_a_database_login_of_ones_own_passes(url):
    settings = ServiceSettings(http_host="0.0.0.0", database_url=url, **OWN_TOKENS)
    assert development_logins(settings) == []
    check_production(settings)


def test_a_development_database_login_is_fine_on_loopback():
    check_production(ServiceSettings(service_name="router", **OWN_TOKENS))


def test_a_service_without_a_database_has_no_login_to_check():
    assert development_logins(IngestSettings(http_host="0.0.0.0")) == []


def test_ingest_names_each_webhook_secret():
    with pytest.raises(UnsafeSettings) as refused:
        check_production(IngestSettings(http_host="0.0.0.0"))
    message = str(refused.value)
    for name in ("HUBSPOT_CLIENT_SECRETS", "SALESFORCE_EVENTS_SECRETS", "PRODUCT_WEBHOOK_SECRETS"):
        assert name in message
