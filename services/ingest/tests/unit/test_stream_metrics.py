"""The change-event stream's metrics: the replay id's age is read when scraped, from the
last time the channel stored one; every figure is named as docs/METRICS.md says."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from revops.ingest.stream.command import StreamSettings, process_metrics, serve_metrics
from revops.ingest.stream.metrics import StreamMetrics

AGE = "revops_salesforce_stream_replay_id_age_seconds"
METRICS_DOC = Path(__file__).resolve().parents[4] / "docs" / "METRICS.md"


def test_the_replay_id_age_counts_from_the_last_one_stored() -> None:
    now = [1_000.0]
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry, clock=lambda: now[0])
    channel = {"channel": "/data/ChangeEvents"}
    assert registry.get_sample_value(AGE, channel) is None  # absent before the first

    metrics.replay_id_stored("/data/ChangeEvents")
    now[0] += 42
    assert registry.get_sample_value(AGE, channel) == 42
    metrics.replay_id_stored("/data/ChangeEvents")
    assert registry.get_sample_value(AGE, channel) == 0


def test_every_stream_metric_is_exposed_and_documented() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    channel = "/data/OpportunityChangeEvent"
    metrics.received.labels(channel).inc(3)
    metrics.published.labels(channel).inc(2)
    metrics.reconnects.labels(channel).inc()
    metrics.errors.labels(channel, "kafka").inc()
    metrics.replay_id_stored(channel)
    text = generate_latest(registry).decode()
    documented = METRICS_DOC.read_text()
    for name in (
        "revops_salesforce_stream_events_received_total",
        "revops_salesforce_stream_events_published_total",
        "revops_salesforce_stream_reconnects_total",
        "revops_salesforce_stream_errors_total",
        AGE,
    ):
        assert f"{name}{{" in text, name
        assert f"`{name}`" in documented, name
    assert (
        registry.get_sample_value(
            "revops_salesforce_stream_events_received_total", {"channel": channel}
        )
        == 3
    )


def test_the_process_serves_its_metrics_on_the_configured_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = serve_metrics(StreamSettings(salesforce_stream_metrics_port=port))
    assert server is not None
    try:
        process_metrics().received.labels("/data/LeadChangeEvent").inc()
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
    assert 'revops_salesforce_stream_events_received_total{channel="/data/LeadChangeEvent"}' in body
    assert serve_metrics(StreamSettings(salesforce_stream_metrics_port=0)) is None
