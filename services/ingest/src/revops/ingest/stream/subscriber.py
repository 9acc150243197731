"""Following one Pub/Sub channel: subscribe after the stored replay id, ask for a batch of
events at a time, decode each with its schema, normalise it as the change-event webhook
does, publish, and store the replay id only after Kafka acknowledged.

So a restart resumes after the last acknowledged event: nothing is lost, and what was
published but not yet recorded (a crash between the two) comes again with the same event
ids, which every consumer skips. The next batch is asked for only once the previous one
is published: no more than a batch is ever held in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry

from revops.events.catalogue import Envelope
from revops.events.crm import CredentialError
from revops.events.producer import KafkaUnavailable
from revops.ingest.backfill.run import Checkpoints
from revops.ingest.domain import salesforce
from revops.ingest.domain.errors import MalformedEvent
from revops.ingest.domain.pubsub import cometd_message
from revops.ingest.stream.metrics import StreamMetrics
from revops.ingest.stream.proto import pubsub_api_pb2 as pb
from revops.ingest.stream.pubsub import BadPayload, PubSubClient

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Waits between attempts after a failure, in seconds; the last one repeats.
BACKOFF_S = (0.5, 1, 2, 5, 10, 30)


class Publisher(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None: ...


class BadStreamEvent(Exception):
    """An event that cannot be read or normalised; the message names the channel, the
    event, its replay id and what is wrong. Nothing of it is published."""


class StreamRefused(Exception):
    """Salesforce refuses the subscription itself (a channel that does not exist or may
    not be read, a replay id it no longer keeps): retrying cannot help."""


class ReplayIds:
    """The replay id after which each channel resumes, kept in a JSON file (rewritten whole,
    atomically). ``scope`` keeps two orgs apart."""

    def __init__(self, path: Path, scope: str) -> None:
        self._checkpoints = Checkpoints(path, scope)

    def get(self, topic: str) -> bytes | None:
        stored = self._checkpoints.get(topic).get("checkpoint")
        return bytes.fromhex(stored) if stored else None

    def save(self, topic: str, replay_id: bytes) -> None:
        self._checkpoints.save(topic, replay_id.hex(), finished=False)

    def forget(self) -> None:
        self._checkpoints.forget()


@dataclass(frozen=True)
class StreamOptions:
    # Events asked for per fetch request (the API delivers at most 100 per request).
    batch: int = 100
    # Where a channel without a stored replay id starts: "latest" (new events only) or
    # "earliest" (everything the org still keeps, 72 hours of change events).
    start: str = "latest"
    # A bad event stops the stream (default: nothing is lost, it waits for a fix) or is
    # logged and passed over.
    skip_bad: bool = False
    custom: salesforce.CustomFields = field(default_factory=salesforce.CustomFields)


@dataclass
class ChannelCounts:
    received: int = 0
    published: int = 0  # events acknowledged by Kafka
    skipped: int = 0
    fetch_requests: int = 0
    subscriptions: int = 0


class ChannelFollower:
    def __init__(
        self,
        topic: str,
        client: PubSubClient,
        publisher: Publisher,
        replay_ids: ReplayIds,
        options: StreamOptions,
        *,
        renew_session: Callable[[], None] = lambda: None,
        sleep: Sleep = asyncio.sleep,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.topic = topic
        self.counts = ChannelCounts()
        self._metrics = metrics or StreamMetrics(CollectorRegistry())
        self._client = client
        self._publisher = publisher
        self._replay_ids = replay_ids
        self._options = options
        self._renew_session = renew_session
        self._sleep = sleep
        self._clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def follow(self) -> None:
        """Until cancelled: a dropped stream, Kafka unreachable or an expired session
        resubscribes after the stored replay id (after a pause when it keeps failing)."""
        failures = 0
        refused_sessions = 0
        errors = self._metrics.errors
        while True:
            if self.counts.subscriptions:
                self._metrics.reconnects.labels(self.topic).inc()
            try:
                await self.follow_once()
                failures = refused_sessions = 0
                continue
            except grpc.aio.AioRpcError as exc:
                refused_sessions = self._after_rpc_error(exc, refused_sessions)
                if refused_sessions:
                    errors.labels(self.topic, "session").inc()
                    continue  # a renewed session, at once
                errors.labels(self.topic, "stream").inc()
                reason = f"{exc.code().name}: {exc.details()}"
            except KafkaUnavailable as exc:
                errors.labels(self.topic, "kafka").inc()
                reason = str(exc)
            wait = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            failures += 1
            log.warning(
                "salesforce stream %s interrupted (%s); resubscribing in %s s",
                self.topic,
                reason,
                wait,
            )
            await self._sleep(wait)

    def _after_rpc_error(self, exc: grpc.aio.AioRpcError, refused_sessions: int) -> int:
        """How many sessions in a row were refused (0: another error, to wait out)."""
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            if refused_sessions:
                raise CredentialError(
                    f"the Pub/Sub API refused a session Salesforce had just given ({details}): "
                    "check the connected app's scopes and that the user may read the channel"
                )
            self._renew_session()
            return refused_sessions + 1
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
            raise StreamRefused(f"{self.topic}: {code.name}: {details}")
        if code == grpc.StatusCode.INVALID_ARGUMENT and "replay" in details.lower():
            raise StreamRefused(
                f"{self.topic}: Salesforce no longer keeps the stored replay id ({details}): "
                "events after it may be lost; run a backfill with --since, then start again "
                "with --restart"
            )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise StreamRefused(f"{self.topic}: {details}")
        return 0

    async def follow_once(self) -> None:
        """One Subscribe call, until the server ends it."""
        call = await self._client.subscribe()
        self.counts.subscriptions += 1
        try:
            await self._fetch(call, self._first_request())
            while True:
                response = await call.read()
                if not isinstance(response, pb.FetchResponse):
                    return  # the server ended the call (EOF)
                await self.handle(response)
                if response.pending_num_requested == 0:
                    await self._fetch(call, pb.FetchRequest(num_requested=self._options.batch))
        finally:
            call.cancel()

    async def _fetch(
        self,
        call: grpc.aio.StreamStreamCall[pb.FetchRequest, pb.FetchResponse],
        request: pb.FetchRequest,
    ) -> None:
        await call.write(request)
        self.counts.fetch_requests += 1

    def _first_request(self) -> pb.FetchRequest:
        batch = self._options.batch
        replay_id = self._replay_ids.get(self.topic)
        if replay_id is not None:
            return pb.FetchRequest(
                topic_name=self.topic,
                replay_preset=pb.CUSTOM,
                replay_id=replay_id,
                num_requested=batch,
            )
        preset = pb.EARLIEST if self._options.start == "earliest" else pb.LATEST
        return pb.FetchRequest(topic_name=self.topic, replay_preset=preset, num_requested=batch)

    async def handle(self, response: pb.FetchResponse) -> None:
        """A response's events published together, then the replay id of the last one
        stored; an empty response (the keepalive) stores the latest replay id, so a
        quiet channel does not resume from a replay id Salesforce has dropped."""
        received_at = self._clock()
        events: list[Envelope] = []
        last = None if response.events else (response.latest_replay_id or None)
        for consumer_event in response.events:
            self.counts.received += 1
            self._metrics.received.labels(self.topic).inc()
            try:
                events.extend(await self._normalised(consumer_event, received_at))
            except BadStreamEvent as bad:
                self._metrics.errors.labels(self.topic, "bad_event").inc()
                if not self._options.skip_bad:
                    # The events before it are good: published and recorded; it is next.
                    await self._publish(events, last)
                    raise
                log.error("salesforce stream: passed over a bad event: %s", bad)
                self.counts.skipped += 1
            last = consumer_event.replay_id
        await self._publish(events, last)

    async def _publish(self, events: list[Envelope], replay_id: bytes | None) -> None:
        if events:
            await self._publisher.publish(events)
            self.counts.published += len(events)
            self._metrics.published.labels(self.topic).inc(len(events))
        if replay_id:
            self._replay_ids.save(self.topic, replay_id)
            self._metrics.replay_id_stored(self.topic)

    async def _normalised(
        self, consumer_event: pb.ConsumerEvent, received_at: datetime
    ) -> list[Envelope]:
        event = consumer_event.event
        where = (
            f"{self.topic}: event {event.id or '?'} (replay id {consumer_event.replay_id.hex()})"
        )
        try:
            schema = await self._client.schema(event.schema_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            raise BadStreamEvent(f"{where}: schema {event.schema_id} not found") from None
        try:
            decoded = schema.decode(event.payload)
            message = cometd_message(
                decoded,
                schema.fields,
                topic=self.topic,
                schema_id=event.schema_id,
                replay_id=consumer_event.replay_id,
            )
            return salesforce.parse_stream_events(
                message, custom=self._options.custom, received_at=received_at
            )
        except (BadPayload, MalformedEvent) as exc:
            raise BadStreamEvent(f"{where}: {exc}") from None
