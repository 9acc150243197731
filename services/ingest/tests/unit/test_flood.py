"""A flood of webhooks from one source: past WEBHOOK_MAX_CONCURRENT in flight, 429 with
Retry-After at once (nothing read, nothing published), counted; admitted requests finish;
other sources are not affected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import httpx
from prometheus_client import REGISTRY

from revops.events.catalogue import Envelope, SignupCreatedEvent
from revops.ingest.main import build_app

from ..conftest import BASE, Signer, unit_settings


class HeldProducer:
    """Publishes only once released: the requests it holds stay in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0
        self.published: list[Envelope] = []

    async def publish(self, events: Sequence[Envelope]) -> None:
        # Counted in events: concurrent requests may share one call (the coalescer).
        self.waiting += len(events)
        await self.release.wait()
        self.published.extend(events)

    async def ping(self) -> None:
        return None


def signup(n: int) -> bytes:
    return json.dumps(
        {
            "type": "user.signed_up",
            "timestamp": "2024-05-31T16:08:45Z",
            "data": {"user_id": f"usr_{n}", "email": f"u{n}@example.com", "signup_type": "cloud"},
        },
        separators=(",", ":"),
    ).encode()


def throttled(source: str) -> float:
    value = REGISTRY.get_sample_value("revops_ingest_webhooks_throttled_total", {"source": source})
    return value or 0.0


async def until(condition, timeout_s: float = 10) -> None:
    """Poll ``condition`` until true, with a deadline (no fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def test_a_flood_past_the_limit_is_answered_429_with_retry_after():
    producer = HeldProducer()
    app = build_app(
        unit_settings(
            webhook_max_concurrent=2,
            webhook_busy_retry_after_s=7,
            stamp_state_offsets=False,
            publish_deadline_s=60,
        )
    )
    app.state.producer = producer
    before = throttled("product")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:

        async def send(n: int) -> httpx.Response:
            body = signup(n)
            return await client.post(
                "/webhooks/product/signups", content=body, headers=Signer.product(body, f"m{n}")
            )

        admitted = [asyncio.create_task(send(n)) for n in (1, 2)]
        await until(lambda: producer.waiting == 2)  # both in flight, held at Kafka
        refused = await asyncio.gather(*(send(n) for n in (3, 4, 5)))
        # Another source has its own limit.
        other = await client.post(
            "/webhooks/salesforce/events",
            content=b"{}",
            headers={"content-type": "application/json"},
        )
        producer.release.set()
        accepted = await asyncio.gather(*admitted)
        after = await send(6)  # back under the limit

    assert [r.status_code for r in refused] == [429, 429, 429]
    assert all(r.headers["Retry-After"] == "7" for r in refused)
    assert "in flight" in refused[0].json()["detail"]
    assert refused[0].json()["request_id"]
    assert throttled("product") - before == 3
    assert other.status_code == 401  # its own checks ran: not throttled
    assert [r.status_code for r in accepted] == [200, 200]
    assert after.status_code == 200
    # Exactly the admitted requests' events were published: a refusal published nothing.
    assert all(isinstance(e, SignupCreatedEvent) for e in producer.published)
    signups = [e for e in producer.published if isinstance(e, SignupCreatedEvent)]
    assert sorted(e.payload.user_id for e in signups) == ["usr_1", "usr_2", "usr_6"]


async def test_zero_means_no_limit():
    producer = HeldProducer()
    app = build_app(
        unit_settings(webhook_max_concurrent=0, stamp_state_offsets=False, publish_deadline_s=60)
    )
    app.state.producer = producer
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:

        async def send(n: int) -> httpx.Response:
            body = signup(n)
            return await client.post(
                "/webhooks/product/signups", content=body, headers=Signer.product(body, f"z{n}")
            )

        tasks = [asyncio.create_task(send(n)) for n in range(20)]
        await until(lambda: producer.waiting == 20)
        producer.release.set()
        answers = await asyncio.gather(*tasks)
    assert {r.status_code for r in answers} == {200}
