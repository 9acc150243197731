"""Postgres plumbing every service shares: the engine bound to the service's own schema,
and the inbox and outbox tables that make consuming idempotent and publishing reliable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    event,
    func,
    make_url,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def one_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``column = ANY($1)`` with one array parameter: the statement's text is the same for
    any number of values, so Postgres and asyncpg prepare it once (an IN list is a new
    statement, and a new prepare, for every length)."""
    # Without the column's length: a cast to VARCHAR(n) would cut a longer value to n
    # characters, which could then match a stored value it does not equal.
    item = column.type.__class__() if isinstance(column.type, String) else column.type
    return column == any_(bindparam(None, list(values), type_=ARRAY(item)))


def applied_offsets_table(metadata: MetaData) -> Table:
    """A table of how far the service has applied each partition it reads: the consumer
    runner writes it in every batch's transaction (a service opts in by defining it), so
    any instance can tell what all of them have applied, as of the database's state."""
    return Table(
        "applied_offsets",
        metadata,
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        # When next_offset last moved: a partition behind but advancing is catching up,
        # one that stopped moving is stalled (a lead waiting for it need not wait longer).
        Column("advanced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def service_metadata(schema: str) -> MetaData:
    """The service's MetaData, with the inbox and outbox tables every service has."""
    metadata = MetaData(schema=schema)
    Table(
        "inbox",
        metadata,
        # The ids of the events this service has applied: written in the same
        # transaction as their effects, so a redelivered event changes nothing.
        Column("event_id", String(200), primary_key=True),
        Column("topic", String(255), nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(200), nullable=False, unique=True),
        # "kafka" for events; other destinations (a CRM write-back) have their own senders.
        Column("destination", String(50), nullable=False, server_default="kafka"),
        Column("topic", String(255), nullable=False),
        Column("key", Text, nullable=False),
        Column("value", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column(
            "next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()
        ),
        Column("last_error", Text),
        Column("failed_at", DateTime(timezone=True)),
    )
    # The relay's query reads only pending rows; without this index it would walk past
    # every row sent in the last OUTBOX_KEEP_SENT_HOURS on each poll.
    Index(
        "outbox_pending",
        outbox.c.id,
        postgresql_where=outbox.c.sent_at.is_(None) & outbox.c.failed_at.is_(None),
    )
    return metadata


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def connect_args(url: str, schema: str | None = None) -> dict[str, Any]:
    """asyncpg's connection arguments: the schema first on the search path, and no TLS to a
    Postgres on this machine (asyncpg's default, `prefer`, negotiates TLS even on loopback,
    about 5 % of a consumer's CPU for nothing). An explicit `?ssl=` in the URL wins."""
    parsed = make_url(url)
    args: dict[str, Any] = {}
    if schema is not None:
        args["server_settings"] = {"search_path": schema, "application_name": schema}
    if parsed.host in LOOPBACK and "ssl" not in parsed.query and "sslmode" not in parsed.query:
        args["ssl"] = False
    return args


class Database:
    """An async engine whose connections see the service's schema first."""

    def __init__(
        self, url: str, schema: str, *, pool_size: int = 5, ping_after_idle_s: float = 1.0
    ) -> None:
        self.schema = schema
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args=connect_args(url, schema),
        )
        _ping_when_idle(self.engine, ping_after_idle_s)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()


def _ping_when_idle(engine: AsyncEngine, after_s: float) -> None:
    """Check a pooled connection before use only if it sat idle for after_s or more.

    SQLAlchemy's pool_pre_ping checks every checkout with three round trips (BEGIN, a
    query, ROLLBACK): a sixth of the CPU of a consumer applying small batches. A
    connection handed back moments ago was working then; one that sat idle is the kind
    that Postgres restarted or dropped meanwhile, and is replaced before anyone sees it.
    A connection that breaks while in use makes SQLAlchemy invalidate the whole pool, and
    the consumer's retry (or the client's, after a 503) gets a fresh one."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < after_s:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            # The pool discards this connection and checks out another (up to 3 tries).
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc
