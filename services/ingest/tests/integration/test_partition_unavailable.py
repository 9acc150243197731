"""Against the real broker (`make infra`): a partition ingest cannot reach costs only the
requests that need it. A topic deleted under a running ingest stands in for a partition
whose leader's broker died (one broker here; `bench/faults/check.py --brokers 3` kills a
real leader): its partitions are in ingest's metadata, and no broker answers for them.

- A CRM state partition whose end offset cannot be read: new leads are accepted without
  the stamp (the router reads the offsets itself, as it does for any unstamped lead) and,
  once a read has failed, without waiting for the next one.
- A coalesced publish call with events for that partition: the other requests in the same
  call are acknowledged; only the one with an event there is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from revops.events import topics
from revops.events.catalogue import Envelope
from revops.events.codec import decode_event
from revops.events.producer import EventProducer
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, delete_topics, read_records, unique_prefix
from revops.ingest.domain.forms import FormRules, parse_submission
from revops.ingest.domain.product import parse_signup
from revops.ingest.main import build_app
from revops.ingest.publishing import STATE_OFFSETS_WAIT_S, Coalescer, KafkaGate
from revops.ingest.settings import IngestSettings

from ..conftest import BASE, FORMATS, Signer

pytestmark = pytest.mark.infra

FORM = (FORMATS / "hubspot_form_submission.json").read_bytes()
FORM_PATH = "/webhooks/hubspot/forms?form_type=demo_request"


@pytest.fixture
async def kafka(infra: None) -> AsyncIterator[KafkaSettings]:
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    yield settings
    await delete_topics(settings)


async def delete_topic(settings: KafkaSettings, spec: topics.TopicSpec) -> None:
    """Deleted, and gone from the broker's metadata (the deletion itself is asynchronous)."""
    name = spec.name(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([name])
        deadline = time.monotonic() + 15
        while name in await admin.list_topics():
            assert time.monotonic() < deadline, f"{name} still there"
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


@asynccontextmanager
async def running(settings: IngestSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield app, client


async def post_form(client: httpx.AsyncClient) -> float:
    started = time.monotonic()
    r = await client.post(FORM_PATH, content=FORM, headers=Signer.hubspot(FORM, BASE + FORM_PATH))
    assert r.status_code == 200, r.text
    return time.monotonic() - started


async def test_a_state_partition_that_cannot_be_read_costs_new_leads_only_their_stamp(
    kafka: KafkaSettings,
) -> None:
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka.kafka_bootstrap_servers, topic_prefix=kafka.topic_prefix
    )
    async with running(settings) as (app, client):
        state = app.state.publisher.state_offsets
        await post_form(client)  # the offsets can be read: stamped
        await delete_topic(kafka, topics.ACCOUNTS)
        # The first leads cannot know the reads will fail: each waits its while, no more.
        # Once a read has failed, a lead does not wait for one that would not answer
        # either: five in a row answered in less than that while.
        took: list[float] = []
        deadline = time.monotonic() + 15
        while not (len(took) >= 5 and max(took[-5:]) < STATE_OFFSETS_WAIT_S):
            assert time.monotonic() < deadline, f"every lead still waits: {took}"
            took.append(await post_form(client))
        assert max(took) < settings.publish_deadline_s, took
        # The partition back (the topic again): the leads are stamped again.
        deadline = time.monotonic() + 30
        while not state.answering:
            assert time.monotonic() < deadline, "the offsets were not read again"
            await create_topics(kafka)  # once the deletion is over, the topic is created
            await asyncio.sleep(0.2)
            state.next_read()
        for _ in range(3):
            await post_form(client)

    records = await read_records(kafka, topics.FORMS.name(kafka.topic_prefix), len(took) + 4)
    stamped = [decode_event(r.value).state_offsets is not None for r in records]
    # In order (one key, one partition): the first form, those sent while the offsets
    # could not be read, three once they could again.
    while_unread, again = stamped[1 : 1 + len(took)], stamped[1 + len(took) :]
    assert while_unread[-5:] == [False] * 5, stamped  # those that did not wait: unstamped
    assert any(again), stamped  # stamped again (a read may still miss its wait under load)


NOW = datetime(2024, 6, 1, tzinfo=UTC)


def signup(n: int) -> Envelope:
    body: dict[str, Any] = {
        "type": "user.signed_up",
        "timestamp": "2024-05-31T16:08:45Z",
        "data": {"user_id": f"u{n}", "email": f"s{n}@example.com", "signup_type": "cloud"},
    }
    return parse_signup(body, webhook_id=f"m{n}", received_at=NOW)


def form(n: int) -> Envelope:
    body = json.loads(FORM)
    raw = FORM + str(n).encode()  # another body, another event
    return parse_submission(body, FormRules(form_id=f"f{n}"), raw_body=raw, received_at=NOW)


async def test_one_call_with_an_unreachable_partition_refuses_only_the_request_that_needs_it(
    kafka: KafkaSettings,
) -> None:
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka.kafka_bootstrap_servers, topic_prefix=kafka.topic_prefix
    )
    producer = EventProducer(settings, client_id="ingest-test")
    await producer.start()
    try:
        await producer.publish([signup(0), form(0)])  # both topics in the producer's metadata
        await delete_topic(kafka, topics.SIGNUPS)
        coalescer, gate = Coalescer(lambda: producer), KafkaGate()
        deadline = settings.publish_deadline_s
        started = time.monotonic()
        # Three requests in one publish call (they reach it in the same event-loop turn).
        answers = await asyncio.gather(
            gate.publish(coalescer, [form(1)], deadline),
            gate.publish(coalescer, [form(2), signup(2)], deadline),
            gate.publish(coalescer, [form(3), form(4)], deadline),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 2.0
    finally:
        await producer.stop()
    assert answers[0] is None and answers[2] is None, answers
    assert isinstance(answers[1], Exception), answers  # a 503: resend
    ids = {decode_event(r.value).id for r in await read_records(kafka, forms_topic(kafka), 5)}
    assert {form(n).id for n in (1, 3, 4)} <= ids


def forms_topic(kafka: KafkaSettings) -> str:
    return topics.FORMS.name(kafka.topic_prefix)
