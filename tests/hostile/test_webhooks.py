"""Hostile webhooks against ingest and the real broker: bodies over the limit, deeply
nested JSON, bodies that are not UTF-8 or not of the declared type, and replays of
correctly signed requests after their time window. Each is refused with its status, and
the topics prove it: nothing reaches Kafka (the end offsets of every topic of this
module's prefix do not move, while the same request sent fairly does move them)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager

from revops.events import admin, topics
from revops.events.senders import (
    hubspot_v3_headers,
    outbound_message,
    relay_headers,
    standard_webhook_headers,
)
from revops.events.settings import KafkaSettings
from revops.ingest.main import build_app
from revops.ingest.settings import DEV_WHSEC, IngestSettings

BASE = "http://ingest"
HUBSPOT_SECRET = "dev-hubspot-secret"
RELAY_SECRET = "dev-salesforce-events-secret"
ORG = "00D000000000001AAA"
LIMIT = 64 * 1024
TOLERANCE_S = 300  # the settings' default for every signed sender
# Outside the window by more than a slow request takes, on either side of it.
STALE_S = (TOLERANCE_S + 10, -(TOLERANCE_S + 10), 86_400)

BATCH = json.dumps(
    [
        {
            "eventId": 1,
            "subscriptionId": 2,
            "portalId": 3,
            "appId": 4,
            "occurredAt": 1717171700123,
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": 51234567801,
            "changeFlag": "CREATED",
            "changeSource": "CRM_UI",
        }
    ]
).encode()
SIGNUP = json.dumps(
    {
        "type": "user.signed_up",
        "timestamp": "2024-05-31T16:08:45Z",
        "data": {"user_id": "usr_1", "email": "jane@example.com", "signup_type": "cloud"},
    }
).encode()
OUTBOUND = outbound_message(
    ORG, [("04l000000000001AAA", "Account", {"Id": "001000000000001AAA", "Name": "Acme"})]
)

Sign = Callable[[str, bytes], dict[str, str]]

pytestmark = pytest.mark.infra


def hubspot(path: str, body: bytes) -> dict[str, str]:
    return hubspot_v3_headers(HUBSPOT_SECRET, BASE + path, body)


def product(path: str, body: bytes) -> dict[str, str]:
    return standard_webhook_headers(DEV_WHSEC, "msg_hostile", body)


def relay(path: str, body: bytes) -> dict[str, str]:
    return relay_headers(RELAY_SECRET, body)


def soap(path: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


JSON_ROUTES: dict[str, Sign] = {
    "/webhooks/hubspot": hubspot,
    "/webhooks/hubspot/forms?form_type=demo_request": hubspot,
    "/webhooks/salesforce/events": relay,
    "/webhooks/product/signups": product,
}
ROUTES: dict[str, Sign] = {**JSON_ROUTES, "/webhooks/salesforce/outbound": soap}


class Bus:
    """Counts every record ever written to the topics of one prefix (their end offsets)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    async def records(self) -> int:
        names = [spec.name(self.kafka.topic_prefix) for spec in topics.ALL_TOPICS]
        partitions = await admin.partitions_of(self.kafka.kafka_bootstrap_servers, names)
        assert len(partitions) >= len(names), "the module's topics are missing"
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.kafka_bootstrap_servers)
        await consumer.start()
        try:
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def untouched(self) -> AsyncIterator[None]:
        before = await self.records()
        yield
        await asyncio.sleep(0.5)  # time for anything published anyway to land
        assert await self.records() == before, "a refused request reached Kafka"


@pytest.fixture(scope="module")
def bus(kafka_settings: KafkaSettings) -> Bus:
    return Bus(kafka_settings)


@pytest.fixture(scope="module")
async def ingest(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    settings = IngestSettings(
        topic_prefix=kafka_settings.topic_prefix,
        salesforce_org_ids=[ORG],
        max_body_bytes=LIMIT,
        # Generous: the shared broker of this machine is sometimes slow to acknowledge.
        publish_deadline_s=20,
    )
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def accepted(ingest: httpx.AsyncClient, bus: Bus, path: str, body: bytes, sign: Sign) -> int:
    """Send fairly (re-signed after a 503, as senders do); the records it added."""
    before = await bus.records()
    for _ in range(5):
        r = await ingest.post(path, content=body, headers=sign(path, body))
        if r.status_code != 503:
            break
        await asyncio.sleep(float(r.headers["Retry-After"]))
    assert r.status_code == 200, r.text
    return await bus.records() - before


def refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    for word in words:
        assert word in r.text, (word, r.text)


async def test_a_body_over_the_limit_is_413(ingest: httpx.AsyncClient, bus: Bus) -> None:
    async with bus.untouched():
        for path, sign in ROUTES.items():
            big = b"[" + b" " * LIMIT + b"]"
            refused(await ingest.post(path, content=big, headers=sign(path, big)), 413, str(LIMIT))

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read and stopped
                for _ in range(LIMIT // 4096 + 2):
                    yield b" " * 4096

            headers = {k: v for k, v in sign(path, b"").items() if k.lower() != "content-length"}
            refused(await ingest.post(path, content=chunks(), headers=headers), 413)
            lying = {**sign(path, big), "Content-Length": "not-a-number"}
            assert (await ingest.post(path, content=big, headers=lying)).status_code in (400, 413)


async def test_deeply_nested_json_is_400(ingest: httpx.AsyncClient, bus: Bus) -> None:
    async with bus.untouched():
        for depth in (1_100, 20_000):  # past the parser's depth limit; within the size limit
            nested = b"[" * depth + b"]" * depth
            for path, sign in JSON_ROUTES.items():
                r = await ingest.post(path, content=nested, headers=sign(path, nested))
                refused(r, 400, "not JSON", "depth")
        deep_xml = b"<a>" * 5_000 + b"</a>" * 5_000
        r = await ingest.post(
            "/webhooks/salesforce/outbound", content=deep_xml, headers=soap("", b"")
        )
        assert r.status_code in (400, 422) and "soapenv:Client" in r.text, r.text


async def test_a_body_that_is_not_utf8_is_400(ingest: httpx.AsyncClient, bus: Bus) -> None:
    bodies = [
        '[{"eventId": "é"}]'.encode("latin-1"),
        "[]".encode("utf-16"),  # with its byte order mark
        b'["\xed\xa0\x80"]',  # an encoded surrogate
        b"\xff\xfe\xfd",
    ]
    async with bus.untouched():
        for body in bodies:
            for path, sign in JSON_ROUTES.items():
                refused(await ingest.post(path, content=body, headers=sign(path, body)), 400)
        latin1 = OUTBOUND.replace(b"Acme", "Ac\xe9me".encode("latin-1"))
        r = await ingest.post(
            "/webhooks/salesforce/outbound", content=latin1, headers=soap("", b"")
        )
        refused(r, 400, "soapenv:Client")


async def test_a_body_of_the_wrong_type_is_415(ingest: httpx.AsyncClient, bus: Bus) -> None:
    async with bus.untouched():
        for path, sign in JSON_ROUTES.items():
            for media in ("text/plain", "application/x-www-form-urlencoded", "text/xml", ""):
                headers = {**sign(path, BATCH), "Content-Type": media}
                refused(await ingest.post(path, content=BATCH, headers=headers), 415)
        for media in ("application/json", "text/plain", ""):
            headers = {"Content-Type": media}
            r = await ingest.post(
                "/webhooks/salesforce/outbound", content=OUTBOUND, headers=headers
            )
            refused(r, 415, "soapenv:Client")


async def test_a_hubspot_request_replayed_after_five_minutes_is_401(
    ingest: httpx.AsyncClient, bus: Bus
) -> None:
    path = "/webhooks/hubspot"
    async with bus.untouched():
        for skew_s in STALE_S:
            sent_ms = int(time.time() * 1000) - skew_s * 1000
            headers = hubspot_v3_headers(HUBSPOT_SECRET, BASE + path, BATCH, now_ms=sent_ms)
            refused(await ingest.post(path, content=BATCH, headers=headers), 401, "Timestamp")

    def still_fresh(path: str, body: bytes) -> dict[str, str]:
        ms = int(time.time() * 1000) - (TOLERANCE_S - 10) * 1000
        return hubspot_v3_headers(HUBSPOT_SECRET, BASE + path, body, now_ms=ms)

    assert await accepted(ingest, bus, path, BATCH, still_fresh) == 1


async def test_a_standard_webhook_replayed_after_five_minutes_is_401(
    ingest: httpx.AsyncClient, bus: Bus
) -> None:
    path = "/webhooks/product/signups"
    async with bus.untouched():
        for skew_s in STALE_S:
            sent_s = int(time.time()) - skew_s
            headers = standard_webhook_headers(DEV_WHSEC, "msg_replayed", SIGNUP, now_s=sent_s)
            r = await ingest.post(path, content=SIGNUP, headers=headers)
            refused(r, 401, "webhook-timestamp")
        # The captured signature under a fresh timestamp does not match.
        sent_s = int(time.time()) - 3600
        captured = standard_webhook_headers(DEV_WHSEC, "msg_replayed", SIGNUP, now_s=sent_s)
        forged = {**captured, "webhook-timestamp": str(int(time.time()))}
        refused(await ingest.post(path, content=SIGNUP, headers=forged), 401, "signature")

    def still_fresh(path: str, body: bytes) -> dict[str, str]:
        ts = int(time.time()) - (TOLERANCE_S - 10)
        return standard_webhook_headers(DEV_WHSEC, "msg_replayed", body, now_s=ts)

    assert await accepted(ingest, bus, path, SIGNUP, still_fresh) == 1


async def test_a_relayed_salesforce_event_replayed_after_five_minutes_is_401(
    ingest: httpx.AsyncClient, bus: Bus
) -> None:
    body = json.dumps([{"data": {"payload": {}, "event": {"replayId": 1}}, "channel": "/x"}])
    async with bus.untouched():
        for skew_s in STALE_S:
            headers = relay_headers(RELAY_SECRET, body.encode(), now_s=int(time.time()) - skew_s)
            r = await ingest.post("/webhooks/salesforce/events", content=body, headers=headers)
            refused(r, 401, "X-Revops-Timestamp")
