"""Shared by ingest's tests: the samples, signing helpers and an app whose producer is a
fake (unit level) -- the integration tests use the real broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from revops.events.catalogue import Envelope
from revops.events.producer import KafkaUnavailable
from revops.ingest.domain.signatures import hubspot_v3, relay_sign, standard_webhooks_sign
from revops.ingest.main import build_app
from revops.ingest.settings import DEV_SIGNUP_KEY, IngestSettings

# Real wire formats (HubSpot, Salesforce): the bytes are exactly the signed bodies.
FORMATS = Path(__file__).parent / "formats"

HUBSPOT_SECRET = "dev-hubspot-secret"
RELAY_SECRET = "dev-salesforce-events-secret"
SAMPLE_ORG = "00D5g000004ExAmEAK"
BASE = "http://ingest.test"


class FakeProducer:
    """Records what would be published; can be told Kafka is down."""

    def __init__(self) -> None:
        self.published: list[Envelope] = []
        self.down = False

    async def publish(self, events: Sequence[Envelope]) -> None:
        if self.down and events:
            raise KafkaUnavailable("broker down (fake)")
        self.published.extend(events)

    async def ping(self) -> None:
        if self.down:
            raise KafkaUnavailable("broker down (fake)")


class Signer:
    """Headers that make a body pass each endpoint's check, signed now."""

    @staticmethod
    def hubspot(body: bytes, uri: str, *, secret: str = HUBSPOT_SECRET) -> dict[str, str]:
        ts = str(int(time.time() * 1000))
        return {
            "content-type": "application/json",
            "X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        }

    @staticmethod
    def product(body: bytes, msg_id: str = "msg_test_1") -> dict[str, str]:
        ts = int(time.time())
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": standard_webhooks_sign(DEV_SIGNUP_KEY, msg_id, ts, body),
        }

    @staticmethod
    def relay(body: bytes, *, secret: str = RELAY_SECRET) -> dict[str, str]:
        ts = int(time.time())
        return {
            "content-type": "application/json",
            "X-Revops-Timestamp": str(ts),
            "X-Revops-Signature": relay_sign(secret, ts, body),
        }

    @staticmethod
    def soap() -> dict[str, str]:
        return {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}


@pytest.fixture(scope="session")
def signer() -> type[Signer]:
    return Signer


@pytest.fixture(scope="session")
def formats() -> Path:
    return FORMATS


def unit_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {"salesforce_org_ids": ["00D000000000001", SAMPLE_ORG[:15]]}
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
def fake_producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def client(fake_producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, its producer replaced by a fake (no lifespan: nothing connects)."""
    app = build_app(unit_settings())
    app.state.producer = fake_producer
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c
