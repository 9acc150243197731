"""Entry point ``revops-router``: the API, the consumer and the outbox relay in one process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import topics
from revops.events.catalogue import (
    AccountTransferred,
    AccountTransferredEvent,
    LeadAeAssigned,
    LeadAeAssignedEvent,
    LeadRouted,
    LeadRoutedEvent,
)
from revops.events.codec import UndecodableEvent, decode_event
from revops.events.consumer import is_infrastructure_error
from revops.events.operator import service_cli
from revops.events.service import BackgroundTask, ServiceRuntime, ServiceSpec, create_app, serve
from revops.router import models as m
from revops.router.account_domains_api import router as domains_router
from revops.router.api import router as api_router
from revops.router.causal_order import release_held_leads
from revops.router.consumer import make_batch_handler, make_event_handler
from revops.router.context import HUBSPOT_OWNER, SALESFORCE_OWNER, RouterContext
from revops.router.domain.windows import utc_day
from revops.router.escalation import watch_sla
from revops.router.figures import read_open_breaches, read_waiting_leads
from revops.router.journal import (
    record_conversions,
    record_routes,
    record_transfers,
    turn_of,
)
from revops.router.leads import route_new_people
from revops.router.owner_clocks import record_owner_clocks
from revops.router.policies import configured_policy
from revops.router.policy_api import router as policy_router
from revops.router.rotations import ALL_QUEUES, TakenTurns
from revops.router.settings import RouterSettings
from revops.router.shifts import watch_shifts
from revops.router.sla_api import router as sla_router
from revops.router.writeback import CrmWriteback
from revops.router.writeback_api import router as writeback_router

log = logging.getLogger(__name__)

SPEC = ServiceSpec(
    name="router",
    metadata=m.metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    # A batch is applied in this order: the state (the roster first, then the CRM's
    # people, accounts, opportunities and activities) before the forms and sign-ups
    # whose routing reads it.
    topics=[
        topics.ROSTER,
        topics.PEOPLE,
        topics.ACCOUNTS,
        topics.OPPORTUNITIES,
        topics.ACTIVITIES,
        topics.FORMS,
        topics.SIGNUPS,
    ],
)


def build_runtime(
    settings: RouterSettings,
    *,
    writeback: CrmWriteback | None = None,
    background: Sequence[BackgroundTask] = (),
) -> ServiceRuntime:
    senders = {}
    if writeback is not None:
        senders = {
            HUBSPOT_OWNER: writeback.hubspot_owner,
            SALESFORCE_OWNER: writeback.salesforce_owner,
        }
    ctx = RouterContext.of(settings)
    configured_policy(ctx)  # a ROUTING_POLICY_FILE that is not valid stops the start here
    return ServiceRuntime(
        spec=SPEC,
        settings=settings,
        handle=make_event_handler(ctx),
        # Routing 500 leads in a dozen queries instead of a dozen each is what makes the
        # rotation lock affordable; one event at a time is the runner's fallback.
        handle_batch=make_batch_handler(ctx),
        senders=senders,
        background=background,
        gauges=[read_waiting_leads(), read_open_breaches(ctx.policy)],
        context=ctx,
    )


def context_of(runtime: ServiceRuntime) -> RouterContext:
    ctx = runtime.context
    assert isinstance(ctx, RouterContext)
    return ctx


async def route_held_leads(runtime: ServiceRuntime) -> None:
    """Route the leads held for CRM state once every instance has applied it (or the
    bound has passed), oldest first, each pass in a transaction of its own."""
    ctx = context_of(runtime)
    bound = timedelta(seconds=ctx.settings.crm_state_wait_s)
    some_held = True
    while not runtime.stopping.is_set():
        try:
            async with runtime.database.transaction() as session:
                released = await release_held_leads(session, ctx, bound)
                if released:
                    await route_new_people(session, ctx, released)
            some_held = released is not None
            if released:
                runtime.relay.wake()
        except Exception as exc:
            # Postgres away, or a deadlock with a batch: the leads stay held, and the
            # next pass tries again.
            level = logging.WARNING if is_infrastructure_error(exc) else logging.ERROR
            log.log(level, "routing held leads failed", exc_info=True)
        await ctx.held_leads.sleep(some_held, runtime.stopping)


async def ensure_queues(runtime: ServiceRuntime) -> None:
    async with runtime.database.transaction() as session:
        await session.execute(
            pg_insert(m.queues)
            .values([{"name": n, "role": r, "region": g} for n, r, g in ALL_QUEUES])
            .on_conflict_do_nothing()
        )


async def restore_decisions(runtime: ServiceRuntime) -> int:
    """On an empty schema (a rebuild), read back the decisions on the routing topic.

    Which rep gets a round-robin turn depends on the order leads (and conversions) arrived
    in, and which open leads a transfer moves on when the account change was applied
    relative to them, none of which a replay reproduces across partitions; so the first
    run's decisions, published as ``lead.routed``, ``lead.ae_assigned`` and
    ``account.transferred``, are re-applied instead of re-decided.
    """
    async with runtime.database.transaction() as session:
        if await session.scalar(select(func.count()).select_from(m.leads)):
            return 0
    settings = runtime.settings
    topic = topics.ROUTING.name(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    restored = 0
    try:
        # All partitions of the spec, assigned by hand: no group, nothing committed.
        tps = [TopicPartition(topic, p) for p in range(topics.ROUTING.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            journal = _Journaled()
            for tp, records in batches.items():
                for record in records:
                    journal.add(record.value)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            async with runtime.database.transaction() as session:
                await journal.record(session)
            restored += journal.count
    finally:
        await _stop_quietly(consumer)
    log.info("restored recorded routing decisions", extra={"count": restored})
    return restored


class _Journaled:
    """The decisions of a slice of the routing topic, to record: lead routing, Assign AE
    on conversion, account owner changes with the leads they moved."""

    def __init__(self) -> None:
        self.routes: list[LeadRouted] = []
        self.conversions: list[LeadAeAssigned] = []
        self.transfers: list[AccountTransferred] = []
        # Every turn a lead's decisions took (its first, a re-route, a waiting lead's
        # routing, the SLA escalation's), and where they left each rotation: only a
        # lead's latest decision is re-applied, and an earlier one's turn (one a manual
        # assignment or the manager's escalation came after) still counted that day and
        # moved the rotation.
        self.turns = TakenTurns()

    def add(self, value: bytes | None) -> None:
        try:
            event = decode_event(value)
        except UndecodableEvent:
            return
        if isinstance(event, LeadRoutedEvent):
            self.routes.append(event.payload)
            self._turn(event)
        elif isinstance(event, LeadAeAssignedEvent):
            self.conversions.append(event.payload)
        elif isinstance(event, AccountTransferredEvent):
            self.transfers.append(event.payload)

    def _turn(self, event: LeadRoutedEvent) -> None:
        p = event.payload
        turn = turn_of(p.owner_id, p.turn, p.turn_round, p.turn_place)
        if p.queue is not None and turn is not None:
            # The day the turn counts on: the decision's (a later decision's event is
            # dated when it was made, a first one when the lead arrived).
            self.turns.add(p.queue, turn, p.lead_id, utc_day(event.occurred_at))

    @property
    def count(self) -> int:
        return len(self.routes) + len(self.conversions) + len(self.transfers)

    async def record(self, session: AsyncSession) -> None:
        await record_routes(session, self.routes)
        await record_conversions(session, self.conversions)
        await record_transfers(session, self.transfers)
        await record_owner_clocks(session, self.routes)
        # The turns counted, and the rotations where those turns left them (never moved
        # back); a recorded decision re-applied later takes no turn again.
        await self.turns.record(session)


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    # aiokafka's stop() can raise the CancelledError of its own internal task when a
    # group-less consumer stops soon after starting; that must not kill our caller.
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def prepare(runtime: ServiceRuntime) -> None:
    await ensure_queues(runtime)
    await restore_decisions(runtime)
    context_of(runtime).journal.may_have_records = await any_recorded(runtime)


async def any_recorded(runtime: ServiceRuntime) -> bool:
    """Whether a rebuild left recorded decisions to re-apply."""
    tables = (m.recorded_routes, m.recorded_conversions, m.recorded_transfers)
    async with runtime.database.transaction() as session:
        for table in tables:
            if await session.scalar(select(literal(1)).select_from(table).limit(1)):
                return True
    return False


async def consume(runtime: ServiceRuntime) -> None:
    """Set up, then run the consumer loop (the runtime's own loop is disabled, so the
    restore finishes before the first event is decided). Postgres or Kafka being away at
    start is waited out, as the runner does afterwards."""
    delay = 0.5
    while True:
        try:
            await prepare(runtime)
            break
        except Exception as exc:
            if not is_infrastructure_error(exc):
                raise
            log.warning("router setup waiting for infrastructure", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    await runtime.consumer.run()


def build_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()
    # The runtime's own consumer loop is off: ``consume`` starts it after the restore.
    runtime_settings = settings.model_copy(update={"consumer_enabled": False})
    background = (
        [consume, route_held_leads, watch_shifts, watch_sla]
        if settings.consumer_enabled
        else [ensure_queues]
    )
    writeback = CrmWriteback(settings)
    runtime = build_runtime(runtime_settings, writeback=writeback, background=background)

    async def close_writeback(app: FastAPI) -> None:
        await writeback.aclose()

    return create_app(
        title="revops router",
        description="Lead routing: rules of engagement, a fair shared rotation, SLAs.",
        settings=runtime_settings,
        routers=[api_router, sla_router, writeback_router, policy_router, domains_router],
        runtime=runtime,
        on_shutdown=[close_writeback],
    )


def serve_router(settings: RouterSettings) -> None:
    serve(build_app(settings), settings, port=settings.http_port)


cli = service_cli("router", __doc__, settings=RouterSettings, serve=serve_router, spec=SPEC)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
