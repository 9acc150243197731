"""Publishing events: idempotent, acks=all, and bounded in time."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from revops.events.catalogue import Envelope
from revops.events.codec import encode_event, event_headers
from revops.events.settings import KafkaSettings

log = logging.getLogger(__name__)

Record = tuple[str, str, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


class KafkaUnavailable(RuntimeError):
    """Kafka did not acknowledge in time: the caller must not report success."""


class EventProducer:
    """Publishes lists of events and returns only when Kafka acknowledged all of them.

    Kafka's own request timeout is set to the publish timeout: aiokafka stops retrying a
    batch once it is older than that. A request already on the wire may still be written
    after we gave up, so a failed publish means "not acknowledged", never "not written":
    callers resend, and stable event ids make the resend harmless.
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str = "revops") -> None:
        self._settings = settings
        self._timeout_s = settings.kafka_publish_timeout_s
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,  # implies acks=all
            acks="all",
            linger_ms=self._settings.kafka_linger_ms,
            max_batch_size=self._settings.kafka_max_batch_bytes,
            request_timeout_ms=int(self._timeout_s * 1000),
            retry_backoff_ms=50,
            metadata_max_age_ms=30_000,
        )

    async def start(self) -> None:
        """Connect now; raises KafkaUnavailable if the broker does not answer in time."""
        await self._ensure_started()

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = self._new_producer()
                try:
                    await asyncio.wait_for(producer.start(), self._timeout_s + 0.3)
                except asyncio.CancelledError:
                    # The caller gave up (a request's deadline): do not leak the client.
                    await asyncio.shield(_stop_quietly(producer))
                    raise
                except (TimeoutError, KafkaError, OSError) as exc:
                    await _stop_quietly(producer)
                    raise KafkaUnavailable(
                        f"Kafka at {self._settings.kafka_bootstrap_servers} is unreachable: "
                        f"{exc.__class__.__name__}"
                    ) from exc
                self._producer = producer
        return self._producer

    async def publish(self, events: Sequence[Envelope]) -> None:
        """Publish the events; return only when all are acknowledged by all in-sync
        replicas, else raise KafkaUnavailable within the publish timeout."""
        if not events:
            return
        prefix = self._settings.topic_prefix
        # Encoded one at a time, as the producer takes them (it copies each into its
        # batch): the encoded events of a request held together until every one was
        # acknowledged were two thirds of ingest's traced memory under 100-event batches.
        records = (
            (event.topic.name(prefix), event.key, encode_event(event), event_headers(event))
            for event in events
        )
        await self._publish_bounded(records, len(events))

    async def publish_records(
        self, records: Sequence[tuple[str, str, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        """Publish already-encoded records (topic, key, value, headers)."""
        if not records:
            return
        await self._publish_bounded(records, len(records))

    async def _publish_bounded(self, records: Iterable[Record], count: int) -> None:
        producer = await self._ensure_started()
        try:
            await asyncio.wait_for(self._send_all(producer, records), self._timeout_s + 0.3)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge {count} event(s) within "
                f"{self._timeout_s:.1f}s: {exc.__class__.__name__}: {exc}"
            ) from exc

    @staticmethod
    async def _send_all(producer: AIOKafkaProducer, records: Iterable[Record]) -> None:
        futures = [
            await producer.send(topic, value=value, key=key.encode(), headers=headers)
            for topic, key, value, headers in records
        ]
        await asyncio.gather(*futures)

    async def hand_over(self, events: Sequence[Envelope]) -> list[asyncio.Future[None]]:
        """Hand the events to the producer and return with one future per event: done once
        Kafka acknowledged that event, else failed with KafkaUnavailable. Unlike
        ``publish`` (all or nothing), each event stands alone: a partition whose leader is
        away fails only the events bound for it. The futures are not bounded in time (the
        idempotent producer retries a batch until its partition has a leader again), so
        the caller bounds its wait."""
        producer = await self._ensure_started()
        loop = asyncio.get_running_loop()
        acks: list[asyncio.Future[None]] = []
        for event in events:
            ack: asyncio.Future[None] = loop.create_future()
            acks.append(ack)
            try:
                # One at a time, in order: events of one key stay in their order.
                sent = await producer.send(
                    event.topic.name(self._settings.topic_prefix),
                    value=encode_event(event),
                    key=event.key.encode(),
                    headers=event_headers(event),
                )
            except (KafkaError, OSError) as exc:
                ack.set_exception(KafkaUnavailable(f"{exc.__class__.__name__}: {exc}"))
            else:
                sent.add_done_callback(functools.partial(_acknowledge, ack))
        return acks

    async def ping(self) -> None:
        producer = await self._ensure_started()
        await asyncio.wait_for(producer.client.fetch_all_metadata(), self._timeout_s)

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await _stop_quietly(producer)


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception:
        log.warning("kafka producer did not stop cleanly", exc_info=True)


def _acknowledge(ack: asyncio.Future[None], sent: asyncio.Future[Any]) -> None:
    error = None if sent.cancelled() else sent.exception()  # retrieved, so never logged
    if ack.done():
        return
    if sent.cancelled() or error is not None:
        ack.set_exception(KafkaUnavailable(f"Kafka did not acknowledge: {error!r}"))
    else:
        ack.set_result(None)
