"""What every service process is made of, wired once: its spec, its runtime (database,
producer, consumer loop, outbox relay, extra background tasks) and its FastAPI app with
/healthz, /readyz, /metrics and bearer-token auth.

One process per service instance runs both the API and the consumer: a deployment scales
by running more instances (the consumer group spreads partitions over them), and a single
command starts a working service. ``CONSUMER_ENABLED=false`` runs an API-only instance.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline
from prometheus_client import Gauge
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import metrics, migrations
from revops.events.consumer import BatchHandler, ConsumerRunner, Handler
from revops.events.contract import Moment as Moment  # what the services import from here
from revops.events.contract import refuse_request
from revops.events.db import Database
from revops.events.logs import AccessLog, configure_logging
from revops.events.outbox import OutboxRelay, Sender
from revops.events.producer import EventProducer
from revops.events.production import check_production
from revops.events.settings import KafkaSettings, ServiceSettings
from revops.events.topics import TopicSpec
from revops.events.version import project_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """What the shared runtime and the ``revops`` CLI need to know about a service."""

    name: str  # also its schema, its database role and its consumer group
    metadata: MetaData  # from revops.events.db.service_metadata(name), plus its tables
    migrations_dir: Path
    topics: Sequence[TopicSpec]  # what its consumer reads

    @property
    def inbox(self) -> Table:
        return self.metadata.tables[f"{self.name}.inbox"]

    @property
    def outbox(self) -> Table:
        return self.metadata.tables[f"{self.name}.outbox"]

    @property
    def applied_offsets(self) -> Table | None:
        """Defined by the services that need to know what every instance has applied."""
        return self.metadata.tables.get(f"{self.name}.applied_offsets")


BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]
# Sets gauges from the service's tables when Prometheus scrapes (a figure of the
# database's state: every instance reads the same one).
GaugeReader = Callable[[AsyncSession], Awaitable[None]]
# A scrape waits this long for the database's figures, then answers without them.
GAUGES_READ_TIMEOUT_S = 2.0


@dataclass
class ServiceRuntime:
    spec: ServiceSpec
    settings: ServiceSettings
    handle: Handler
    senders: Mapping[str, Sender] = field(default_factory=dict)
    handle_batch: BatchHandler | None = None
    background: Sequence[BackgroundTask] = ()
    gauges: Sequence[GaugeReader] = ()
    # The service's own context, shared by its handlers and background tasks.
    context: Any = None

    def __post_init__(self) -> None:
        self.database_url = self.settings.resolved_database_url()
        self.database = Database(
            self.database_url, self.spec.name, pool_size=self.settings.db_pool_size
        )
        self.producer = EventProducer(self.settings, client_id=self.spec.name)
        self.relay = OutboxRelay(
            settings=self.settings,
            database=self.database,
            outbox=self.spec.outbox,
            producer=self.producer,
            senders=self.senders,
        )
        self.consumer = ConsumerRunner(
            settings=self.settings,
            database=self.database,
            inbox=self.spec.inbox,
            topics=self.spec.topics,
            handle=self.handle,
            producer=self.producer,
            after_commit=self.relay.wake,
            handle_batch=self.handle_batch,
            applied_offsets=self.spec.applied_offsets,
        )
        self._tasks: list[asyncio.Task[None]] = []
        # Set by stop(): a background loop ends its pass and returns.
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        await migrations.upgrade(self.database_url, self.spec.name, self.spec.migrations_dir)
        if self.settings.outbox_enabled:
            self._spawn("outbox", self.relay.run())
        if self.settings.consumer_enabled:
            self._spawn("consumer", self.consumer.run())
        for task in self.background:
            self._spawn(getattr(task, "__name__", "background"), task(self))

    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                # A dead loop must not leave a process that looks alive: readiness fails.
                log.exception("background task crashed", extra={"task": name})
                raise

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    async def read_gauges(self) -> None:
        """Set the figures read from the database: the outbox's pending and failed rows
        and the service's own gauges. A database that does not answer in time costs only
        these figures (they keep their last value), never the scrape."""
        try:
            await asyncio.wait_for(self._read_gauges(), GAUGES_READ_TIMEOUT_S)
        except Exception as exc:
            metrics.GAUGES_READ_FAILURES.labels(self.spec.name).inc()
            log.warning("reading the metrics' figures failed", extra={"error": repr(exc)})

    async def _read_gauges(self) -> None:
        # The relay sets the destinations that have pending rows; the ones that had some
        # at the last scrape and have none now go back to zero here.
        pending = await self.relay.pending_counts()
        set_per_destination(metrics.OUTBOX_PENDING, self.spec.name, pending)
        async with self.database.transaction() as session:
            await outbox_failed_counts(session, self.spec)
            for reader in self.gauges:
                await reader(session)

    def crashed(self) -> list[str]:
        """The background tasks that died: raised, or were cancelled by something other
        than stop(). A one-shot task (setting up the queues) that returned is fine."""
        return [
            t.get_name()
            for t in self._tasks
            if t.done()
            and not self.stopping.is_set()
            and (t.cancelled() or t.exception() is not None)
        ]

    async def stop(self) -> None:
        self.stopping.set()
        self.consumer.stop()
        self.relay.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=20)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.producer.stop()
        await self.database.dispose()


async def outbox_failed_counts(session: AsyncSession, spec: ServiceSpec) -> None:
    """Rows that gave up per destination (CRM write-backs, mostly), zero where none did."""
    outbox = spec.outbox
    rows = await session.execute(
        select(outbox.c.destination, func.count())
        .where(outbox.c.failed_at.is_not(None), outbox.c.sent_at.is_(None))
        .group_by(outbox.c.destination)
    )
    set_per_destination(metrics.OUTBOX_FAILED, spec.name, {str(d): int(n) for d, n in rows})


def set_per_destination(gauge: Gauge, service: str, counts: Mapping[str, int]) -> None:
    """Each destination's count; zero for one the gauge knows that has none now."""
    known = {
        sample.labels["destination"]
        for family in gauge.collect()
        for sample in family.samples
        if sample.labels.get("service") == service
    }
    for destination in {*counts, *known}:
        gauge.labels(service, destination).set(counts.get(destination, 0))


# --- auth --------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)
Scope = Literal["read", "write"]


def _check_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None, scope: Scope
) -> str:
    settings: ServiceSettings = request.app.state.settings
    supplied = credentials.credentials if credentials is not None else ""
    admin = settings.api_token.get_secret_value()
    reader = settings.api_read_token.get_secret_value()
    if supplied and secrets.compare_digest(supplied, admin):
        return "write"
    if supplied and secrets.compare_digest(supplied, reader):
        if scope == "write":
            raise HTTPException(403, "this token may only read")
        return "read"
    raise HTTPException(
        401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
    )


async def require_read(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return _check_token(request, credentials, "read")


async def require_write(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return _check_token(request, credentials, "write")


ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)


# --- what a request may carry ------------------------------------------------------------

# Postgres cannot store or compare a NUL character: a value with one names nothing here,
# so it is refused with a 422 (and the documents say so) instead of failing in the driver.
StoredText = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]

# Postgres binds OFFSET as a bigint; no table here comes near a billion rows.
MAX_OFFSET = 1_000_000_000
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


# --- what the OpenAPI documents say about refusals ---------------------------------------

Responses = dict[int | str, dict[str, Any]]


class Readiness(BaseModel):
    """Whether the service can do its work: each dependency and background loop checked."""

    status: Literal["ready", "not ready"] = Field(description="ready only if every check is ok")
    checks: dict[str, str] = Field(
        description="each check by name: ok, unavailable (and why) or crashed"
    )


class Refusal(BaseModel):
    """Why a request was refused (FastAPI's ``HTTPException`` body)."""

    detail: str = Field(description="why, in words (naming the field or thing refused)")


# Every guarded route answers 401 without a valid token (``APIRouter(responses=...)``),
# and a write route 403 to the read-only token.
NEEDS_A_TOKEN: Responses = {401: {"model": Refusal, "description": "no valid bearer token"}}
NEEDS_THE_ADMIN_TOKEN: Responses = {
    403: {"model": Refusal, "description": "the read-only token may not change anything"}
}


BAD_JSON_BODY: Responses = {
    400: {"model": Refusal, "description": "the body is not JSON (or not UTF-8)"}
}


def not_found(what: str) -> Responses:
    return {404: {"model": Refusal, "description": f"no such {what}"}}


def invalid(location: str, name: str, message: str) -> RequestValidationError:
    """A 422 for a check FastAPI cannot make itself, in the shape of its own 422s (the one
    the documents declare): ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    return RequestValidationError(
        [{"loc": (location, name), "msg": message, "type": "value_error"}]
    )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for one request: committed when the request's handler returns."""
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.database.transaction() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]


# --- the app -----------------------------------------------------------------------------

ReadyCheck = Callable[[], Awaitable[None]]


def settle_gc() -> None:
    """Once started: collect, then freeze what is alive (modules, the ORM's metadata,
    compiled statements, settings), and collect the young generation less often.

    Measured under e2e load (revops_gc_pause_seconds): every full collection walked all of
    those long-lived objects and stopped the router for 0.25-0.5 s, 6 times a minute, and
    each stop showed as a spike in the routed lead's latency. Frozen objects are skipped
    by every collection; they are still freed by reference counting when dropped. A young
    generation of 700 allocations was collected ~18 times a second at 1,000 events/s."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(10_000, older, oldest)


TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def create_app(
    *,
    title: str,
    settings: KafkaSettings | ServiceSettings,
    routers: Sequence[APIRouter] = (),
    runtime: ServiceRuntime | None = None,
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    on_startup: Sequence[Callable[[FastAPI], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[FastAPI], Awaitable[None]]] = (),
    description: str = "",
) -> FastAPI:
    checks: dict[str, ReadyCheck] = dict(ready_checks or {})
    if runtime is not None:
        checks.setdefault("database", runtime.database.ping)
        checks.setdefault("kafka", runtime.producer.ping)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            await runtime.start()
        for hook in on_startup:
            await hook(app)
        settle_gc()
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook(app)
            if runtime is not None:
                await runtime.stop()

    metrics.watch_gc_pauses()  # here, not in serve(): every uvicorn worker builds its app
    version = project_version()
    # /docs (Swagger UI) and /redoc load their scripts from the service itself, not a
    # CDN: they work on a closed network and leak nothing to a third party.
    app = FastAPIOffline(
        title=title,
        description=description,
        lifespan=lifespan,
        version=project_version(),
        telemetry=None if settings.http_telemetry else TELEMETRY_OFF,
        static_url="/docs-assets",
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.add_exception_handler(RequestValidationError, refuse_request)
    if runtime is not None:
        _serve_readers(app, runtime.settings)
    if settings.http_access_log:
        app.add_middleware(AccessLog)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive (and which version it runs)."""
        return {"status": "ok", "version": version}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"model": Readiness, "description": "not ready"}},
    )
    async def readyz(response: Response) -> Readiness:
        """Kafka and the database answer, and no background loop has died."""
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), 2.0)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"unavailable: {exc.__class__.__name__}"
        if runtime is not None:
            for task in runtime.crashed():
                results[task] = "crashed"
        ready = all(v == "ok" for v in results.values())
        response.status_code = 200 if ready else 503
        return Readiness(status="ready" if ready else "not ready", checks=results)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: the plumbing's and the business's (docs/METRICS.md)."""
        if runtime is not None:
            await runtime.read_gauges()
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


# Answers this large or larger are compressed for a client that accepts gzip: a page of
# 100 leads is ~40 KB of JSON, ~5 KB compressed. Smaller ones are not worth the CPU.
GZIP_MINIMUM_BYTES = 1024


def _serve_readers(app: FastAPI, settings: ServiceSettings) -> None:
    """What dashboards and BI tools reading the API need: compressed answers, and the
    browser's leave (CORS) for the configured origins to read with a bearer token."""
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )


def serve(
    app: FastAPI | str, settings: ServiceSettings | KafkaSettings, *, port: int, **kw: Any
) -> None:
    """Run the service with uvicorn, JSON logs, graceful shutdown on SIGTERM; refuse the
    public development secrets where the service is exposed (``production``)."""
    check_production(settings)
    name = getattr(settings, "service_name", "service")
    level = getattr(settings, "log_level", "INFO")
    configure_logging(name, level)
    host = getattr(settings, "http_host", "127.0.0.1")
    kw.setdefault("access_log", False)  # AccessLog logs each request as JSON instead
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=20, **kw)
