"""Product sign-ups -> signup.created."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from revops.ingest.domain.errors import MalformedEvent
from revops.ingest.domain.product import parse_signup

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def body(**data: Any) -> dict[str, Any]:
    base = {"user_id": "usr_1", "email": "Jane@Example.com", "signup_type": "install"}
    base.update(data)
    return {"type": "user.signed_up", "timestamp": "2024-05-31T18:08:45+02:00", "data": base}


def test_a_signup() -> None:
    event = parse_signup(
        body(country="DE", first_source_url="https://x.io/p", anonymous_user_id="anon-1"),
        webhook_id="msg_1",
        received_at=NOW,
    )
    assert event.id == "product:msg_1"
    assert event.key == "jane@example.com"
    assert event.occurred_at == datetime(2024, 5, 31, 16, 8, 45, tzinfo=UTC)
    p = event.payload
    assert (p.signup_type, p.country, p.first_source_url, p.anonymous_user_id) == (
        "install",
        "DE",
        "https://x.io/p",
        "anon-1",
    )


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ({"type": "user.deleted"}, "type"),
        ({"timestamp": "2024-05-31T16:08:45"}, "timestamp"),
        ({"data": {"user_id": "u", "email": "a@b.co"}}, "data.signup_type"),
        (
            {"data": {"user_id": "u", "email": "a@b.co", "signup_type": "onprem"}},
            "data.signup_type",
        ),
        ({"data": {"user_id": "u", "email": "nope", "signup_type": "cloud"}}, "data.email"),
        ({"data": {"user_id": "u", "email": "  ", "signup_type": "cloud"}}, "data.email"),
    ],
)
def test_refusals_name_the_field(broken: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_signup({**body(), **broken}, webhook_id="m", received_at=NOW)
    assert caught.value.field == field
