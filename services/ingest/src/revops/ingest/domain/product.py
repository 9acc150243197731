"""Product sign-ups (our own body, signed per Standard Webhooks) -> ``signup.created``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from revops.events.catalogue import SignupCreated, SignupCreatedEvent
from revops.ingest.domain import values as v
from revops.ingest.domain.errors import MalformedEvent


class SignupData(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    user_id: str = Field(min_length=1, max_length=200, description="The product's user id")
    email: str = Field(min_length=1, max_length=254, description="The user's e-mail address")
    signup_type: Literal["cloud", "install"] = Field(
        description="`cloud`: a cloud sign-up; `install`: a private (self-hosted) install"
    )
    country: str | None = Field(default=None, description="A country name or ISO code")
    company: str | None = Field(default=None, description="The company the user gave")
    first_source_url: str | None = Field(
        default=None, max_length=4000, description="The first page the visitor saw"
    )
    referrer: str | None = Field(
        default=None, max_length=4000, description="The page that sent the visitor there"
    )
    anonymous_user_id: str | None = Field(
        default=None, description="The analytics id of the visitor before signing up"
    )


class SignupWebhook(BaseModel):
    """The body of ``POST /webhooks/product/signups``, signed per Standard Webhooks
    (``webhook-id`` is the event's idempotency key)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "type": "user.signed_up",
                    "timestamp": "2024-05-31T16:08:45Z",
                    "data": {
                        "user_id": "usr_123",
                        "email": "jane.doe@example.com",
                        "signup_type": "cloud",
                        "country": "DE",
                        "company": "Example Corp",
                        "first_source_url": "https://www.example.com/pricing?utm_source=google",
                        "anonymous_user_id": "anon_5f2c",
                    },
                }
            ]
        },
    )

    type: Literal["user.signed_up"] = Field(description="The kind of event: a sign-up")
    timestamp: AwareDatetime = Field(description="When the user signed up (ISO 8601, a zone)")
    data: SignupData = Field(description="Who signed up, and where they came from")


def parse_signup(body: Any, *, webhook_id: str, received_at: datetime) -> SignupCreatedEvent:
    try:
        webhook = SignupWebhook.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedEvent(field, first["msg"], 0) from None
    data = webhook.data
    email = v.email(data.email, "data.email", 0)
    if email is None:
        raise MalformedEvent("data.email", "is required", 0)
    return v.build_event(
        SignupCreatedEvent,
        id=f"product:{webhook_id}",
        source="product",
        occurred_at=webhook.timestamp,
        received_at=received_at,
        index=0,
        payload=lambda: SignupCreated(
            user_id=data.user_id,
            email=email,
            signup_type=data.signup_type,
            country=data.country,
            company=data.company,
            first_source_url=data.first_source_url,
            referrer=data.referrer,
            anonymous_user_id=data.anonymous_user_id,
        ),
    )
