"""The endpoints through the ASGI app, Kafka replaced by a fake: every answer's status
and message, and nothing reaches the producer unless the whole request is valid."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from xml.etree import ElementTree as ET

import httpx
import pytest

from revops.ingest.domain.signatures import hubspot_v1, hubspot_v3
from revops.ingest.main import build_app

from ..conftest import BASE, FORMATS, FakeProducer, Signer, unit_settings

BATCH = (FORMATS / "hubspot_webhook_batch.json").read_bytes()
FORM = (FORMATS / "hubspot_form_submission.json").read_bytes()
OUTBOUND = (FORMATS / "sfdc_outbound_message_opportunity.xml").read_bytes()
CDC = (FORMATS / "sfdc_cdc_opportunity.json").read_bytes()
ACK = (FORMATS / "sfdc_outbound_ack.xml").read_bytes()
HUBSPOT_URL = f"{BASE}/webhooks/hubspot"
SIGNUP = json.dumps(
    {
        "type": "user.signed_up",
        "timestamp": "2024-05-31T16:08:45Z",
        "data": {"user_id": "usr_1", "email": "jane@example.com", "signup_type": "cloud"},
    },
    separators=(",", ":"),
).encode()


async def test_hubspot_batch_accepted_after_publication(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    r = await client.post(
        "/webhooks/hubspot", content=BATCH, headers=Signer.hubspot(BATCH, HUBSPOT_URL)
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 4
    assert [e.type for e in fake_producer.published] == [
        "person.changed",
        "person.changed",
        "opportunity.changed",
        "opportunity.changed",
    ]


async def test_v1_v2_accepted_through_the_app(client: httpx.AsyncClient) -> None:
    headers = {
        "content-type": "application/json",
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature": hubspot_v1("dev-hubspot-secret", BATCH),
    }
    assert (
        await client.post("/webhooks/hubspot", content=BATCH, headers=headers)
    ).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-HubSpot-Signature-v3": "AAAA", "X-HubSpot-Request-Timestamp": "1"},
        {"X-HubSpot-Signature": "00", "X-HubSpot-Signature-Version": "v1"},
    ],
)
async def test_bad_or_missing_signature_is_401(
    client: httpx.AsyncClient, fake_producer: FakeProducer, headers: dict[str, str]
) -> None:
    r = await client.post(
        "/webhooks/hubspot", content=BATCH, headers={"content-type": "application/json", **headers}
    )
    assert r.status_code == 401
    assert "signature" in r.json()["detail"].lower() or "timestamp" in r.json()["detail"].lower()
    assert fake_producer.published == []


async def test_an_old_v3_timestamp_is_401(client: httpx.AsyncClient) -> None:
    ts = str(int(time.time() * 1000) - 301_000)
    headers = {
        "content-type": "application/json",
        "X-HubSpot-Request-Timestamp": ts,
        "X-HubSpot-Signature-v3": hubspot_v3("dev-hubspot-secret", "POST", HUBSPOT_URL, BATCH, ts),
    }
    r = await client.post("/webhooks/hubspot", content=BATCH, headers=headers)
    assert r.status_code == 401 and "too old" in r.json()["detail"]


async def test_signed_uri_rebuilt_from_the_public_base_url(fake_producer: FakeProducer) -> None:
    app = build_app(unit_settings(public_base_url="https://ingest.example.com/"))
    app.state.producer = fake_producer
    public = "https://ingest.example.com/webhooks/hubspot?tenant=acme"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://10.0.0.7:8000"
    ) as c:
        r = await c.post(
            "/webhooks/hubspot?tenant=acme", content=BATCH, headers=Signer.hubspot(BATCH, public)
        )
        assert r.status_code == 200, r.text
        internal = Signer.hubspot(BATCH, "http://10.0.0.7:8000/webhooks/hubspot?tenant=acme")
        r = await c.post("/webhooks/hubspot?tenant=acme", content=BATCH, headers=internal)
        assert r.status_code == 401


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    headers = {**Signer.hubspot(BATCH, HUBSPOT_URL), "content-type": "text/plain"}
    r = await client.post("/webhooks/hubspot", content=BATCH, headers=headers)
    assert r.status_code == 415 and "text/plain" in r.json()["detail"]
    r = await client.post(
        "/webhooks/salesforce/outbound",
        content=OUTBOUND,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 415


@pytest.fixture
async def small_client(fake_producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(unit_settings(max_body_bytes=1000))
    app.state.producer = fake_producer
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def test_over_the_size_limit_is_413_by_header_and_by_stream(
    small_client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    big = b"[" + b" " * 1000 + b"]"
    r = await small_client.post(
        "/webhooks/hubspot", content=big, headers=Signer.hubspot(big, HUBSPOT_URL)
    )
    assert r.status_code == 413 and "1000" in r.json()["detail"]

    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b" " * 300

    r = await small_client.post(
        "/webhooks/hubspot", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert pulled < 100, pulled  # stopped reading past the limit
    assert fake_producer.published == []
    exactly = b"[" + b" " * 998 + b"]"
    r = await small_client.post(
        "/webhooks/hubspot", content=exactly, headers=Signer.hubspot(exactly, HUBSPOT_URL)
    )
    assert r.status_code == 200, r.text  # at the limit: accepted


async def test_malformed_is_400_or_422_naming_field_and_index(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    bad = b"[{not json"
    r = await client.post(
        "/webhooks/hubspot", content=bad, headers=Signer.hubspot(bad, HUBSPOT_URL)
    )
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    batch = json.loads(BATCH)
    batch[2]["occurredAt"] = "soon"
    body = json.dumps(batch).encode()
    r = await client.post(
        "/webhooks/hubspot", content=body, headers=Signer.hubspot(body, HUBSPOT_URL)
    )
    assert r.status_code == 422
    answer = r.json()
    assert (answer["field"], answer["index"]) == ("occurredAt", 2)
    assert answer["detail"].startswith("event 2: occurredAt")
    assert fake_producer.published == []  # one bad event fails the whole request


async def test_kafka_down_is_503_with_retry_after(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    fake_producer.down = True
    r = await client.post(
        "/webhooks/hubspot", content=BATCH, headers=Signer.hubspot(BATCH, HUBSPOT_URL)
    )
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    r = await client.post("/webhooks/salesforce/outbound", content=OUTBOUND, headers=Signer.soap())
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "soapenv:Server" in r.text
    assert fake_producer.published == []


def ack_of(xml: bytes) -> list[tuple[str, str | None]]:
    return [(el.tag, (el.text or "").strip() or None) for el in ET.fromstring(xml).iter()]


async def test_salesforce_outbound_acked_after_publication(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    r = await client.post("/webhooks/salesforce/outbound", content=OUTBOUND, headers=Signer.soap())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert ack_of(r.content) == ack_of(ACK)
    assert [e.id for e in fake_producer.published] == [
        "salesforce:04l5g00000Dq1AbAAJ",
        "salesforce:04l5g00000Dq1AcAAJ",
    ]


async def test_salesforce_outbound_faults(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    other_org = OUTBOUND.replace(b"00D5g000004ExAmEAK", b"00D5g000009OtHeRAA")
    r = await client.post("/webhooks/salesforce/outbound", content=other_org, headers=Signer.soap())
    assert r.status_code == 403 and "<faultcode>soapenv:Client</faultcode>" in r.text
    assert "00D5g000009OtHe is not allowed" in r.text
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    r = await client.post("/webhooks/salesforce/outbound", content=bomb, headers=Signer.soap())
    assert r.status_code == 400 and "forbidden XML" in r.text
    bad = OUTBOUND.replace(b"<sf:Amount>45000.0</sf:Amount>", b"<sf:Amount>lots</sf:Amount>")
    r = await client.post("/webhooks/salesforce/outbound", content=bad, headers=Signer.soap())
    assert r.status_code == 422 and "event 1: Amount" in r.text
    assert fake_producer.published == []


async def test_salesforce_source_network(fake_producer: FakeProducer) -> None:
    app = build_app(unit_settings(salesforce_source_networks=["13.108.0.0/14"]))
    app.state.producer = fake_producer
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        r = await c.post("/webhooks/salesforce/outbound", content=OUTBOUND, headers=Signer.soap())
    assert r.status_code == 403 and "203.0.113.5" in r.text


async def test_salesforce_events_relay(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    r = await client.post("/webhooks/salesforce/events", content=CDC, headers=Signer.relay(CDC))
    assert r.status_code == 200 and r.json()["accepted"] == 2
    wrong = Signer.relay(CDC, secret="not-the-secret")
    r = await client.post("/webhooks/salesforce/events", content=CDC, headers=wrong)
    assert r.status_code == 401


async def test_forms_with_query_parameters(
    client: httpx.AsyncClient, fake_producer: FakeProducer
) -> None:
    path = "/webhooks/hubspot/forms?form_type=webinar&campaign=cmp-42&form_id=f-1"
    r = await client.post(path, content=FORM, headers=Signer.hubspot(FORM, BASE + path))
    assert r.status_code == 200, r.text
    [event] = fake_producer.published
    assert (event.payload.form_type, event.payload.campaign_id, event.payload.form_id) == (  # type: ignore[attr-defined]
        "webinar",
        "cmp-42",
        "f-1",
    )


async def test_product_signup(client: httpx.AsyncClient, fake_producer: FakeProducer) -> None:
    r = await client.post(
        "/webhooks/product/signups", content=SIGNUP, headers=Signer.product(SIGNUP, "msg_9")
    )
    assert r.status_code == 200, r.text
    assert fake_producer.published[0].id == "product:msg_9"
    body = SIGNUP.replace(b'"signup_type":"cloud"', b'"signup_type":"onprem"')
    r = await client.post("/webhooks/product/signups", content=body, headers=Signer.product(body))
    assert r.status_code == 422 and r.json()["field"] == "data.signup_type"
    r = await client.post(
        "/webhooks/product/signups", content=SIGNUP, headers={"content-type": "application/json"}
    )
    assert r.status_code == 401


async def test_openapi_documents_the_signup_body(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    body = doc["paths"]["/webhooks/product/signups"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SignupWebhook"
    }
    schema = doc["components"]["schemas"]["SignupWebhook"]
    data_field = schema["properties"]["data"]
    assert data_field["$ref"] == "#/components/schemas/SignupData"
    assert data_field["description"]  # the read contract: every field described
    data = doc["components"]["schemas"]["SignupData"]["properties"]
    assert set(data) >= {
        "user_id",
        "email",
        "signup_type",
        "country",
        "company",
        "first_source_url",
        "anonymous_user_id",
    }


async def test_logs_name_request_source_count_and_never_a_secret(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="revops.ingest")
    caplog.set_level(logging.INFO, logger="revops.access")
    headers = {**Signer.hubspot(BATCH, HUBSPOT_URL), "X-Request-Id": "req-123"}
    await client.post("/webhooks/hubspot", content=BATCH, headers=headers)
    await client.post(
        "/webhooks/hubspot", content=BATCH, headers={"content-type": "application/json"}
    )
    await client.post("/webhooks/product/signups", content=SIGNUP, headers=Signer.product(SIGNUP))
    # One line per request: an accepted webhook's source and event count are on its
    # access-log line, not on a second one.
    assert not [r for r in caplog.records if r.getMessage() == "webhook accepted"]
    accepted = [r for r in caplog.records if getattr(r, "status", None) == 200]
    assert [(r.name, r.source, r.events) for r in accepted] == [  # type: ignore[attr-defined]
        ("revops.access", "hubspot", 4),
        ("revops.access", "product", 1),
    ]
    everything = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (
        "dev-hubspot-secret",
        "cmV2b3BzLWRldi1zaWdudXAtc2VjcmV0",
        "dev-salesforce-events-secret",
    ):
        assert secret not in everything
    refused = [r for r in caplog.records if r.getMessage() == "webhook refused"]
    assert refused and refused[0].status == 401  # type: ignore[attr-defined]
