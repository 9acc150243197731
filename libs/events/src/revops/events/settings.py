"""Settings shared by every service, from the environment, with defaults that work on one
machine (`make infra`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    # The environment only: a .env file (docker-compose.yml's, with the containers' secrets)
    # is not read, so the services started on this machine never pick it up by accident.
    model_config = SettingsConfigDict(extra="ignore")

    # "production": the service refuses the public development secrets even on a
    # loopback address (it does on any other address whatever this says).
    revops_env: str = "development"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prefix of every topic and consumer group name, to share one broker between
    # environments (tests use a unique one per run).
    topic_prefix: str = ""
    # Replicas of each topic `revops topics ensure` creates: 1 on the single local broker;
    # 3 on a cluster of three (with the brokers' min.insync.replicas=2, an acknowledged
    # event is then on two brokers before ingest answers).
    topic_replication_factor: int = Field(default=1, ge=1)
    # How long a publish may wait for the broker's acknowledgement before the caller is
    # told Kafka is unreachable (ingest then answers 503 well within its 2 s budget).
    kafka_publish_timeout_s: float = Field(default=1.5, gt=0)
    kafka_linger_ms: int = Field(default=5, ge=0)
    # The producer's batch per partition: aiokafka's 16 KB default splits a 100-event
    # HubSpot batch (~100 KB) into several requests; 256 KB sends it in one.
    kafka_max_batch_bytes: int = Field(default=262_144, ge=1024)
    # FastAPI's own OpenTelemetry spans, metrics and logs for each request, through the
    # globally configured providers: turn it on once an OpenTelemetry SDK and exporter
    # are set up. Off, FastAPI skips its per-request look at those providers: 4 us of
    # every request (bench/app_overhead.py: /healthz through the app 35-36 -> 31-32 us).
    # Prometheus metrics (/metrics) are served either way.
    http_telemetry: bool = False
    # One JSON line per request (method, path, status, duration, request id); uvicorn's
    # own free-text access log is always off. Not free: a small route through the app took
    # 57-72 us a request without it and 190-263 us with it (bench/access_log.py, best of
    # 7 rounds, on 2 busy cores); /healthz, /readyz and /metrics log at DEBUG and cost
    # nothing measurable at INFO.
    http_access_log: bool = True


class ServiceSettings(KafkaSettings):
    """What every consumer service needs; each service subclasses it with its own rules."""

    service_name: str = "service"
    database_url: str = ""
    db_pool_size: int = Field(default=5, ge=1)
    # Bearer tokens: the admin one may change things, the read one only read.
    api_token: SecretStr = SecretStr("dev-admin-token")
    api_read_token: SecretStr = SecretStr("dev-read-token")
    log_level: str = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Web pages on these origins may read the API from the browser (CORS), e.g.
    # CORS_ORIGINS='["https://dashboards.example.com"]'; none by default.
    cors_origins: list[str] = Field(default_factory=list)
    # The company's clock: a day given to a time parameter (?from=2026-12-03) is this zone's
    # day, and renewals' forecast weeks and quarters follow it.
    company_timezone: str = "America/Los_Angeles"
    # The consumer loop.
    consumer_batch_max: int = Field(default=500, ge=1)
    consumer_poll_ms: int = Field(default=200, ge=1)
    # The broker holds a fetch until it has this many bytes or this long has passed. With
    # Kafka's defaults (1 byte) it answers at once with whatever is there, so under a
    # steady trickle every consumer fetches and commits a batch of one or two events
    # hundreds of times a second; a short wait makes the batches, and their fixed cost
    # (a transaction, an offset commit), shared by many events.
    consumer_fetch_min_bytes: int = Field(default=65_536, ge=1)
    consumer_fetch_wait_ms: int = Field(default=20, ge=0, le=500)
    consumer_max_attempts: int = Field(default=3, ge=1)
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1000)
    consumer_enabled: bool = True
    outbox_enabled: bool = True
    # Sent rows are kept this long (what was delivered, when; a replayed input within it
    # queues nothing new), then deleted so the table stays the size of a week's output.
    outbox_keep_sent_hours: float = Field(default=168, gt=0)
    # After a commit wakes the relay, it waits this long so that one pass delivers the
    # rows of every batch committed meanwhile (0: a pass per commit).
    outbox_gather_ms: float = Field(default=20, ge=0, le=1000)
    # Rows for other destinations (CRM calls) are sent this many at a time, outside any
    # transaction: a claimed row is leased (not due again) for OUTBOX_LEASE_S, and a call
    # is cut off at half the lease, so only a crashed instance's rows are ever re-claimed.
    outbox_send_concurrency: int = Field(default=8, ge=1)
    outbox_lease_s: float = Field(default=120, gt=0)
    # A destination saying "later" (429, Retry-After) is asked again after the wait it
    # gave, at most this long; this long when it gave none. Never counted as a failure.
    outbox_retry_after_max_s: float = Field(default=3600, gt=0)
    outbox_retry_later_s: float = Field(default=30, gt=0)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        name = self.service_name
        return f"postgresql+asyncpg://{name}:{name}@127.0.0.1:5432/revops"
