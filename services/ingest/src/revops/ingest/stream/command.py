"""``revops-ingest salesforce-stream``: the org's change events (Change Data Capture)
through the Pub/Sub API, published as the change-event webhook publishes them.

One process per org: each channel is followed by one subscription, and its replay id is
kept in ``SALESFORCE_STREAM_STATE_FILE`` (keep it on a volume that outlives the process).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Annotated, Literal
from wsgiref.simple_server import WSGIServer

import httpx
import typer
from prometheus_client import start_http_server
from pydantic import Field

from revops.events.crm import CredentialError, CrmSettings, SalesforceAuth
from revops.events.logs import configure_logging
from revops.events.producer import EventProducer
from revops.ingest.settings import IngestSettings
from revops.ingest.stream.metrics import StreamMetrics
from revops.ingest.stream.pubsub import (
    DEFAULT_ENDPOINT,
    PubSubClient,
    Session,
    open_channel,
)
from revops.ingest.stream.subscriber import (
    BadStreamEvent,
    ChannelFollower,
    Publisher,
    ReplayIds,
    StreamOptions,
    StreamRefused,
)

log = logging.getLogger(__name__)


class StreamSettings(IngestSettings, CrmSettings):
    """Ingest's field mappings and Kafka, the Salesforce credentials, and the stream's."""

    salesforce_pubsub_endpoint: str = DEFAULT_ENDPOINT
    # Off only for a local test server: Salesforce's endpoint is TLS.
    salesforce_pubsub_tls: bool = True
    # The channels: /data/ChangeEvents carries every entity selected for Change Data
    # Capture; /data/<Object>ChangeEvent one object; a custom channel its members.
    salesforce_cdc_topics: list[str] = Field(default_factory=lambda: ["/data/ChangeEvents"])
    # Events asked for at a time (the API delivers at most 100 per request).
    salesforce_stream_batch: int = Field(default=100, ge=1, le=100)
    salesforce_stream_start: Literal["latest", "earliest"] = "latest"
    salesforce_stream_skip_bad: bool = False
    salesforce_stream_state_file: Path = Path(".revops/salesforce-stream.json")
    # How long a batch may wait for Kafka's acknowledgement before the stream gives up on
    # it and resubscribes after the stored replay id. Webhooks have a caller waiting and
    # get KAFKA_PUBLISH_TIMEOUT_S (1.5 s); the stream has none, and each give-up repeats
    # the batch: a partition without a leader for a few seconds (a new topic, a broker
    # restarting) is waited out instead.
    salesforce_stream_publish_timeout_s: float = Field(default=30, gt=0)
    # Prometheus metrics at http://HTTP_HOST:<port>/metrics (0: not served).
    salesforce_stream_metrics_port: int = Field(default=8005, ge=0, le=65535)
    # The org id sent with every call when the sign-in does not tell it (a fixed token);
    # empty: the first of SALESFORCE_ORG_IDS.
    salesforce_org_id: str = ""

    def stream_options(self) -> StreamOptions:
        return StreamOptions(
            batch=self.salesforce_stream_batch,
            start=self.salesforce_stream_start,
            skip_bad=self.salesforce_stream_skip_bad,
            custom=self.salesforce_custom_fields(),
        )


def stream_producer(settings: StreamSettings) -> EventProducer:
    """The stream's producer: Kafka's acknowledgement waited for up to
    SALESFORCE_STREAM_PUBLISH_TIMEOUT_S."""
    return EventProducer(
        settings.model_copy(
            update={"kafka_publish_timeout_s": settings.salesforce_stream_publish_timeout_s}
        ),
        client_id="revops-salesforce-stream",
    )


class Sessions:
    """The Salesforce session the calls carry, signed in when first needed and again
    when the Pub/Sub API refuses it."""

    def __init__(self, settings: StreamSettings) -> None:
        self._settings = settings
        self._auth = SalesforceAuth(settings)
        self._http = httpx.AsyncClient(timeout=30)

    async def __call__(self) -> Session:
        token, instance_url = await self._auth.session(self._http)
        org_id = self._auth.org_id or self._settings.salesforce_org_id
        if not org_id and self._settings.salesforce_org_ids:
            org_id = self._settings.salesforce_org_ids[0]
        if not org_id:
            raise CredentialError("the org id is unknown: set SALESFORCE_ORG_ID")
        return token, instance_url, org_id

    def renew(self) -> None:
        self._auth.renew()

    async def close(self) -> None:
        await self._http.aclose()


async def stream(
    settings: StreamSettings,
    *,
    publisher: Publisher | None = None,
    topics: list[str] | None = None,
    restart: bool = False,
    metrics: StreamMetrics | None = None,
) -> None:
    """Follow every channel until cancelled or until one cannot go on (the error says why).
    ``metrics``: the process's own (on Prometheus' default registry) unless given."""
    sessions = Sessions(settings)
    client = PubSubClient(
        open_channel(settings.salesforce_pubsub_endpoint, tls=settings.salesforce_pubsub_tls),
        sessions,
    )
    producer = None
    if publisher is None:
        producer = stream_producer(settings)
        publisher = producer
    replay_ids = ReplayIds(settings.salesforce_stream_state_file, _scope(settings))
    if restart:
        replay_ids.forget()
    followers = [
        ChannelFollower(
            topic,
            client,
            publisher,
            replay_ids,
            settings.stream_options(),
            renew_session=sessions.renew,
            metrics=metrics or process_metrics(),
        )
        for topic in topics or settings.salesforce_cdc_topics
    ]
    try:
        async with asyncio.TaskGroup() as group:
            for follower in followers:
                group.create_task(follower.follow())
    finally:
        await client.close()
        await sessions.close()
        if producer is not None:
            await producer.stop()


@functools.cache
def process_metrics() -> StreamMetrics:
    """The stream's metrics on Prometheus' default registry, made once per process."""
    return StreamMetrics()


def serve_metrics(settings: StreamSettings) -> WSGIServer | None:
    """/metrics on SALESFORCE_STREAM_METRICS_PORT, from a thread of its own (it ends with
    the process); None when the port is 0."""
    if not settings.salesforce_stream_metrics_port:
        return None
    process_metrics()
    server, _ = start_http_server(settings.salesforce_stream_metrics_port, addr=settings.http_host)
    return server


def _scope(settings: StreamSettings) -> str:
    org = settings.salesforce_instance_url or settings.salesforce_login_url
    return f"salesforce-stream {org} {settings.salesforce_username or ''}".strip()


def salesforce_stream(
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="a channel (repeat it); default SALESFORCE_CDC_TOPICS"),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option("--restart", help="forget the stored replay ids: start at --start"),
    ] = False,
    start: Annotated[
        str | None,
        typer.Option("--start", help="latest or earliest: where a channel never read starts"),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="log a bad event and go on instead of stopping")
    ] = False,
) -> None:
    """Follow the org's Change Data Capture channels through the Pub/Sub API and publish
    their events as the change-event webhook does, until SIGTERM or Ctrl-C."""
    settings = StreamSettings()
    if start is not None:
        if start not in ("latest", "earliest"):
            raise typer.BadParameter(f"{start!r}: latest or earliest")
        settings.salesforce_stream_start = "earliest" if start == "earliest" else "latest"
    settings.salesforce_stream_skip_bad = settings.salesforce_stream_skip_bad or skip_bad
    configure_logging("ingest-salesforce-stream", settings.log_level)
    serve_metrics(settings)
    try:
        asyncio.run(stream(settings, topics=topic, restart=restart))
    except* (CredentialError, BadStreamEvent, StreamRefused) as group:
        for problem in group.exceptions:
            typer.echo(f"salesforce stream stopped: {problem}", err=True)
        raise typer.Exit(1) from None
    except* KeyboardInterrupt:
        pass
