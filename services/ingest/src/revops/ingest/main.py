"""Entry point `revops-ingest`: the webhook API and its Kafka producer, no database.

Workers (``HTTP_WORKERS``, default 2): each uvicorn worker is a process with its own
event loop and its own idempotent producer. Two, because a webhook mostly waits for
Kafka's acknowledgement and each producer keeps one produce request in flight: a second
worker doubles that pipeline and uses the second core, and each worker holds half the
bodies in flight. On the shared 2-core test machine (bench/results/ingest_load*.json):
100-event batches offered at 15,000 events/s were answered at 9,350 events/s with 2
workers and 8,290 with 1, with a peak resident size of 144 MB per worker instead of
168 MB; single-event rates were within the machine's noise. More workers than cores
only add memory (about 92 MB each at rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from fastapi import FastAPI

from revops.events import metrics, topics
from revops.events.logs import configure_logging
from revops.events.operator import service_cli
from revops.events.producer import EventProducer, KafkaUnavailable
from revops.events.service import create_app, serve
from revops.ingest.api import build_router, document_bodies, serving_routes
from revops.ingest.publishing import Coalescer, EndOffsetsReader, KafkaGate, StateOffsets
from revops.ingest.settings import IngestSettings
from revops.ingest.stream.command import salesforce_stream

log = logging.getLogger(__name__)


def build_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    producer = EventProducer(settings, client_id="ingest")
    gate = KafkaGate()
    crm_state = [t.name(settings.topic_prefix) for t in topics.CRM_STATE]
    offsets_reader = EndOffsetsReader(settings, crm_state)

    async def start_producer(app: FastAPI) -> None:
        try:
            await producer.start()
        except KafkaUnavailable:
            gate.down = True
            # Start anyway: /readyz says not ready and webhooks get 503 until Kafka is back.
            log.warning("kafka unavailable at startup; webhooks answer 503 until it is back")
        else:
            # Connected and the partitions looked up before the first form needs them.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(offsets_reader.read(), 5)

        # Everything built so far (FastAPI, pydantic schemas, the producer) lives as long
        # as the process: out of the collector's sight, every full collection is cheap.
        # Measured in-process: about a third less CPU per single-event request.
        gc.collect()
        gc.freeze()

    async def stop_producer(app: FastAPI) -> None:
        await producer.stop()
        await offsets_reader.stop()

    router = build_router(settings, gate)
    app = create_app(
        title="revops ingest",
        description="Verified, normalised webhooks from HubSpot, Salesforce and the product.",
        settings=settings,
        routers=[router],
        ready_checks={"kafka": producer.ping},
        on_startup=[start_producer],
        on_shutdown=[stop_producer],
    )
    app.router.routes[:0] = serving_routes(router)
    app.state.producer = producer
    state_offsets = StateOffsets(offsets_reader.read, settings.state_offsets_gather_ms / 1000)
    app.state.publisher = Coalescer(
        lambda: app.state.producer,
        state_offsets=state_offsets if settings.stamp_state_offsets else None,
    )
    document_bodies(app)
    return app


def build_worker_app() -> FastAPI:
    """The app of one worker process: a spawned worker inherits no logging set-up, so it
    configures its own (JSON lines, the request log included)."""
    settings = IngestSettings()
    configure_logging(settings.service_name, settings.log_level)
    return build_app(settings)


def serve_ingest(settings: IngestSettings) -> None:
    if settings.http_workers > 1:
        # Several processes need an import string: each worker builds its own app. They
        # count into one directory, so any worker's /metrics answers the same totals.
        with metrics.shared_by_workers():
            serve(
                "revops.ingest.main:build_worker_app",
                settings,
                port=settings.http_port,
                factory=True,
                workers=settings.http_workers,
                access_log=False,
                # uvicorn kills a worker that does not answer its supervisor within 5 s by
                # default: a worker still importing on a busy machine was killed in a loop.
                timeout_worker_healthcheck=60,
            )
    else:
        # uvicorn's own access log off: the app's writes one JSON line per request, with
        # the webhook's source and event count.
        serve(build_app(settings), settings, port=settings.http_port, access_log=False)


# Ingest has no database: nothing to migrate.
cli = service_cli(
    "ingest",
    "`revops-ingest`: the webhook API (HubSpot, Salesforce, product sign-ups) and its Kafka "
    "producer.",
    settings=IngestSettings,
    serve=serve_ingest,
)
cli.command("salesforce-stream")(salesforce_stream)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
