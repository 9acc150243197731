"""`revops-renewals`: the service (API on :8003, the consumer and the weekly forecast
scheduler, in one process)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from revops.events import topics
from revops.events.operator import service_cli
from revops.events.outbox import OutboxMessage, Sender
from revops.events.service import BackgroundTask, ServiceRuntime, ServiceSpec, create_app, serve
from revops.renewals.api import router
from revops.renewals.consumer import SALESFORCE_RENEWAL, make_handlers
from revops.renewals.figures import read_snapshot_age
from revops.renewals.forecast import Clock, ForecastScheduler, real_clock
from revops.renewals.forecast_api import router as forecast_router
from revops.renewals.lists_api import router as lists_router
from revops.renewals.models import metadata
from revops.renewals.salesforce import SalesforceRenewals
from revops.renewals.settings import RenewalsSettings

SPEC = ServiceSpec(
    name="renewals",
    metadata=metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    topics=[topics.OPPORTUNITIES, topics.ACCOUNTS],
)


def build_app(
    settings: RenewalsSettings | None = None,
    *,
    clock: Clock = real_clock,
    scheduler_tick_s: float = 30.0,
) -> FastAPI:
    settings = settings or RenewalsSettings()
    background: list[BackgroundTask] = []
    scheduler = ForecastScheduler(settings, clock, scheduler_tick_s)
    if settings.scheduler_enabled:
        background.append(scheduler)
    senders: dict[str, Sender] = {}
    salesforce: list[SalesforceRenewals] = []  # made once the runtime has its database
    if settings.salesforce_enabled:

        async def send_to_salesforce(message: OutboxMessage) -> None:
            await salesforce[0].send(message)

        senders[SALESFORCE_RENEWAL] = send_to_salesforce
    handle, handle_batch = make_handlers(settings)
    runtime = ServiceRuntime(
        spec=SPEC,
        settings=settings,
        handle=handle,
        handle_batch=handle_batch,
        senders=senders,
        background=background,
        gauges=[read_snapshot_age(clock)],
    )
    if settings.salesforce_enabled:
        salesforce.append(SalesforceRenewals(settings, runtime.database))

    async def close_clients(_: FastAPI) -> None:
        scheduler.stop()
        for client in salesforce:
            await client.aclose()

    return create_app(
        title="revops renewals",
        description="Stage history, renewals on Closed Won, pipeline and weekly forecasts.",
        settings=settings,
        routers=[router, forecast_router, lists_router],
        runtime=runtime,
        on_shutdown=[close_clients],
    )


def serve_renewals(settings: RenewalsSettings) -> None:
    serve(build_app(settings), settings, port=settings.http_port)


cli = service_cli("renewals", __doc__, settings=RenewalsSettings, serve=serve_renewals, spec=SPEC)


def main() -> None:
    cli()
