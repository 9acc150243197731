"""The production guard: a service reachable from other machines, or told it runs in
production (``REVOPS_ENV=production``), refuses to start with a public development secret.

The development defaults (``dev-admin-token``, ``dev-hubspot-secret``, ...) are printed in
the README so that one machine works out of the box; anyone who reads it could call an
exposed service with them, or sign webhooks it would accept. The same goes for the
development database logins (each role's password is its name, ``router:router``):
a service using one is talking to a database anyone can log in to.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class UnsafeSettings(Exception):
    """Settings that must not be used where the service runs."""


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the service reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def _secret_values(value: Any) -> list[str]:
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, list | tuple):
        return [v.get_secret_value() for v in value if isinstance(v, SecretStr)]
    return []


def development_secrets(settings: BaseSettings) -> list[str]:
    """The settings (as environment variable names) still holding a public development
    default: a secret whose value is one of its field's built-in defaults."""
    found = []
    for name, field in type(settings).model_fields.items():
        values = _secret_values(getattr(settings, name))
        if not values:
            continue
        default = field.get_default(call_default_factory=True)
        public = {v for v in _secret_values(default) if v}
        if public.intersection(values):
            found.append(name.upper())
    return found


def development_database_login(database_url: str) -> bool:
    """Whether a database URL logs in with a public development password: the role's own
    name, as deploy/local/postgres-init.sql creates the roles."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return False  # not a URL: the service fails on it with a clearer message
    return bool(url.username) and url.password == url.username


def development_logins(settings: BaseSettings) -> list[str]:
    """The settings naming a database login with a public development password."""
    resolve = getattr(settings, "resolved_database_url", None)
    if resolve is None:
        return []  # no database (ingest, the console)
    return ["DATABASE_URL"] if development_database_login(resolve()) else []


def exposure(settings: BaseSettings) -> str | None:
    """Why the guard applies to these settings, or None on a developer's machine."""
    if str(getattr(settings, "revops_env", "")).lower() == "production":
        return "REVOPS_ENV=production"
    host = str(getattr(settings, "http_host", "127.0.0.1"))
    if not is_loopback(host):
        return f"HTTP_HOST={host} is not a loopback address"
    return None


def check_production(settings: BaseSettings) -> None:
    """Raise ``UnsafeSettings`` naming every public development secret still set, when the
    service is exposed or in production."""
    why = exposure(settings)
    if why is None:
        return
    public = development_secrets(settings) + development_logins(settings)
    if public:
        raise UnsafeSettings(
            f"{why}, but {', '.join(public)} still hold{'s' if len(public) == 1 else ''} "
            "the public development value: set your own secret in the environment"
        )
