"""Who is signed in (the role kept in the signed session cookie), the CSRF token of
every form, and which service token the console calls the APIs with."""

from __future__ import annotations

import secrets
from typing import Literal

from fastapi import Request

from revops.console.inputs import SignIn
from revops.console.settings import ConsoleSettings

Role = Literal["admin", "read"]


class SignInNeeded(Exception):
    """No session: the page sends the person to the sign-in form."""


class AdminNeeded(Exception):
    """An admin action asked for with the read token's session."""


class FormExpired(Exception):
    """A form posted without the session's CSRF token (another site's, or a stale one)."""


def settings_of(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.settings
    return settings


def role_of(request: Request) -> Role | None:
    role = request.session.get("role")
    return role if role in ("admin", "read") else None


def require_role(request: Request) -> Role:
    role = role_of(request)
    if role is None:
        raise SignInNeeded
    return role


def require_admin(request: Request) -> None:
    if require_role(request) != "admin":
        raise AdminNeeded


def token_for(request: Request) -> str:
    """The service token of the signed-in role: only an admin session writes."""
    settings = settings_of(request)
    secret = settings.api_token if require_role(request) == "admin" else settings.api_read_token
    return secret.get_secret_value()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: object) -> None:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not isinstance(supplied, str):
        raise FormExpired
    if not secrets.compare_digest(expected.encode(), supplied.encode()):
        raise FormExpired


def role_for_token(settings: ConsoleSettings, form: SignIn) -> Role | None:
    supplied = form.token.encode()
    if secrets.compare_digest(supplied, settings.api_token.get_secret_value().encode()):
        return "admin"
    if secrets.compare_digest(supplied, settings.api_read_token.get_secret_value().encode()):
        return "read"
    return None


def sign_in(request: Request, role: Role) -> None:
    # A new session, and a new CSRF token with it: nothing from before sign-in carries over.
    request.session.clear()
    request.session["role"] = role
    csrf_token(request)


def sign_out(request: Request) -> None:
    request.session.clear()


def flash(request: Request, kind: Literal["ok", "error"], text: str) -> None:
    """A message for the next page the person sees (after a form's redirect)."""
    request.session["flash"] = [kind, text]


def take_flash(request: Request) -> tuple[str, str] | None:
    found = request.session.pop("flash", None)
    if isinstance(found, list) and len(found) == 2:
        return str(found[0]), str(found[1])
    return None
