"""The change-event stream's Prometheus metrics, per channel: events received from the
Pub/Sub API and published to Kafka, the age of the replay id last stored, resubscriptions
and errors. ``revops-ingest salesforce-stream`` serves them at /metrics on
SALESFORCE_STREAM_METRICS_PORT.

The replay id's age is the stream's heartbeat: Salesforce answers at least every 270 s,
with events or with an empty keepalive whose latest replay id is stored too, so an age
well past that means the stream is stuck (or its acknowledgements are), whatever the
channel's traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Why a subscription ended or an event was refused.
ERROR_REASONS = ("stream", "kafka", "session", "bad_event")


class StreamMetrics:
    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.received = Counter(
            "revops_salesforce_stream_events_received_total",
            "Change events received from the Pub/Sub API",
            ["channel"],
            registry=registry,
        )
        self.published = Counter(
            "revops_salesforce_stream_events_published_total",
            "Events published from change events and acknowledged by Kafka",
            ["channel"],
            registry=registry,
        )
        self.reconnects = Counter(
            "revops_salesforce_stream_reconnects_total",
            "Subscriptions made again after one ended (a dropped stream, Kafka unreachable, "
            "an expired session)",
            ["channel"],
            registry=registry,
        )
        self.errors = Counter(
            "revops_salesforce_stream_errors_total",
            "Errors by reason: stream (a gRPC error), kafka (no acknowledgement in time), "
            "session (refused, signed in again), bad_event (cannot be read or normalised)",
            ["channel", "reason"],
            registry=registry,
        )
        self._replay_ids = _ReplayIdAge(clock)
        registry.register(self._replay_ids)

    def replay_id_stored(self, channel: str) -> None:
        self._replay_ids.stored(channel)


class _ReplayIdAge(Collector):
    """Seconds since each channel last stored a replay id, computed when scraped."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._stored_at: dict[str, float] = {}

    def stored(self, channel: str) -> None:
        self._stored_at[channel] = self._clock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "revops_salesforce_stream_replay_id_age_seconds",
            "Seconds since the channel last stored a replay id (after Kafka acknowledged its "
            "events, or on a keepalive); absent before the first",
            labels=["channel"],
        )
        now = self._clock()
        for channel, stored_at in sorted(self._stored_at.items()):
            family.add_metric([channel], max(0.0, now - stored_at))
        yield family
