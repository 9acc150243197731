"""Causal order: a new lead is routed only with the CRM state that Kafka held when it came.

Ingest acknowledges a CRM change (an account, a contact, an SDR's task, an opportunity, a
rep change) once Kafka holds it. A form or sign-up sent after that must be routed with the
change applied, whatever order the router reads its topics in and however many router
instances share them. So every new lead has a *watermark*: the end offsets of the CRM
state topics' partitions (``topics.CRM_STATE``) at a moment after it was sent, below which
every change acknowledged before it lies. Ingest stamps them on the lead when it accepts
the request (``Envelope.state_offsets``: the tightest watermark, nothing later to wait
for); for a lead without them, the router asks Kafka when its batch is applied. The
router compares the watermark with how far its instances have applied each partition
(``applied_offsets``, written in every batch's transaction, so it is the database's own
truth). A lead whose watermark is met is routed in its batch; the others are held in
``held_leads`` (committed with the batch: nothing acknowledged is lost) and the
next batch of new leads (or the held-leads loop) of any instance routes them, oldest
first, as soon as every instance has applied up to their watermark. A partition that
stops moving must not hold leads for ever: once ``CRM_STATE_WAIT_S`` (2 s by default)
has passed with no partition a lead waits for moving, the lead is routed without that
state; a partition that moves (an instance catching up after a restart) is waited for,
up to ``CRM_STATE_WAIT_MAX_S`` (60 s) in all. Either way the lead's reason says so, and
``revops_router_leads_held_total{outcome="bound"}`` counts it.

A lead whose decision is recorded (a rebuild re-applies it) never waits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events import bulk, topics
from revops.events.catalogue import SourceRef
from revops.events.consumer import Offsets, end_offsets_of, partition_key, partition_offsets
from revops.events.db import one_of
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.leads import NewPerson, lead_id_for

log = logging.getLogger(__name__)


LEADS_HELD = Counter(
    "revops_router_leads_held_total",
    "New leads that waited for CRM state: held, applied (routed once the state "
    "was applied), bound (routed after the bound, without it)",
    ["outcome"],
)
HOLD_SECONDS = Histogram(
    "revops_router_lead_hold_seconds",
    "How long a held lead waited for the CRM state before it was routed",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)


def unmet(watermark: Mapping[str, int], applied: Mapping[str, int]) -> dict[str, int]:
    """The partitions of a watermark not applied that far yet."""
    return {key: end for key, end in watermark.items() if applied.get(key, 0) < end}


def state_topic_names(ctx: RouterContext) -> list[str]:
    return [t.name(ctx.prefix) for t in topics.CRM_STATE]


async def applied_offsets(session: AsyncSession, keys: Iterable[str]) -> Offsets:
    """How far the router's instances have applied the partitions ``keys`` name."""
    applied, _ = await _applied_and_held(session, keys, [])
    return applied


async def leads_to_route_now(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> list[NewPerson]:
    """The batch's new leads that may be routed now; the others are held (stored in
    ``held_leads`` by this transaction) until the CRM state they may need is applied.

    A lead also waits behind an earlier one of its email still held, so the first form
    makes the lead and a later one is its touchpoint, as without the wait.
    """
    if not people or ctx.settings.crm_state_wait_s <= 0:
        return list(people)  # 0: causal order turned off, every lead routed at once
    recorded = await _recorded(session, ctx, people)
    may_wait = [p for p in people if lead_id_for(p.email) not in recorded]
    watermarks = await _watermarks(session, ctx, may_wait)
    if not watermarks:
        return list(people)
    keys = {k for w in watermarks.values() for k in w}
    applied, behind = await _applied_and_held(session, keys, [p.email for p in may_wait])
    held: list[tuple[NewPerson, Offsets]] = []
    for person in may_wait:
        watermark = watermarks.get(person.event_id)
        if watermark is None:
            continue
        missing = unmet(watermark, applied)
        if missing or person.email in behind:
            held.append((person, missing or watermark))
    if not held:
        return list(people)
    await _hold(session, held)
    held_ids = {p.event_id for p, _ in held}
    return [p for p in people if p.event_id not in held_ids]


async def _watermarks(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> dict[str, Offsets]:
    """Each lead's watermark: the offsets ingest stamped on it when it accepted it (the
    tightest: nothing later to wait for), else the end offsets now, one request for the
    batch (outside a consumer's batch there are none: the lead is not held)."""
    found = {
        p.event_id: partition_offsets(p.state_offsets)
        for p in people
        if p.state_offsets is not None
    }
    unstamped = [p for p in people if p.state_offsets is None]
    end_offsets = end_offsets_of(session)
    if unstamped and end_offsets is not None:
        now = await end_offsets(state_topic_names(ctx))
        found.update({p.event_id: now for p in unstamped})
    return found


async def _recorded(
    session: AsyncSession, ctx: RouterContext, people: Sequence[NewPerson]
) -> set[str]:
    if not ctx.journal.may_have_records:
        return set()
    ids = sorted({lead_id_for(p.email) for p in people})
    rows = await session.execute(
        select(m.recorded_routes.c.lead_id).where(one_of(m.recorded_routes.c.lead_id, ids))
    )
    return {str(lead_id) for lead_id in rows.scalars()}


async def _applied_and_held(
    session: AsyncSession, keys: Iterable[str], emails: Sequence[str]
) -> tuple[Offsets, set[str]]:
    """In one round trip: how far the partitions ``keys`` name are applied, and which of
    ``emails`` have a lead held."""
    wanted = set(keys)
    t, h = m.applied_offsets, m.held_leads
    names = sorted({key.rsplit(":", 1)[0] for key in wanted})
    offsets = select(
        sa.literal("offset").label("kind"),
        t.c.topic.label("name"),
        t.c.partition.label("number"),
        t.c.next_offset.label("value"),
    ).where(one_of(t.c.topic, names))
    held = select(sa.literal("held"), h.c.email, sa.literal(0), sa.literal(0, sa.BigInteger)).where(
        one_of(h.c.email, sorted(emails))
    )
    applied: Offsets = {}
    behind: set[str] = set()
    for kind, name, number, value in await session.execute(sa.union_all(offsets, held)):
        if kind == "held":
            behind.add(str(name))
        elif (key := partition_key(str(name), int(number))) in wanted:
            applied[key] = int(value)
    return applied, behind


async def _hold(session: AsyncSession, held: Sequence[tuple[NewPerson, Offsets]]) -> None:
    rows = [
        {
            "event_id": p.event_id,
            "email": p.email,
            "person": person_to_json(p),
            "watermark": watermark,
        }
        for p, watermark in held
    ]
    await session.execute(_HOLD, bulk.arrays(m.held_leads, _HELD_COLUMNS, rows))
    LEADS_HELD.labels("held").inc(len(held))


_HELD_COLUMNS = ("event_id", "email", "person", "watermark")
_held = bulk.rows(m.held_leads, _HELD_COLUMNS)
# One statement for the batch's held leads. The database's clock: every instance checks
# the bound with the same one.
_HOLD = (
    pg_insert(m.held_leads)
    .from_select(
        [*_HELD_COLUMNS, "held_since"],
        sa.select(
            *(bulk.value(m.held_leads, _held, name) for name in _HELD_COLUMNS),
            func.clock_timestamp(),
        ),
    )
    .on_conflict_do_nothing()
)


# One round trip, so that a batch can look at every turn: lock and delete the oldest held
# leads that may go now (the oldest of each email only: a later one waits behind it):
# those whose watermark every instance has applied, or whose bound has passed while no
# partition they wait for moved, or that have waited the longest a lead may wait; and say
# whether any lead was held. Only the leads released are locked: locking every held lead
# each time wrote hundreds of row locks a batch with two routers. Topic names cannot hold
# a colon, so a partition key splits at its only one.
_RELEASE = sa.text(
    """
    WITH ready AS (
        SELECT h.event_id, w.applied
        FROM held_leads AS h
        CROSS JOIN LATERAL (
            SELECT NOT EXISTS (
                SELECT 1
                FROM json_each_text(h.watermark) AS w(key, value)
                LEFT JOIN applied_offsets AS a
                  ON a.topic = split_part(w.key, ':', 1)
                 AND a.partition = split_part(w.key, ':', 2)::int
                WHERE COALESCE(a.next_offset, 0) < w.value::bigint
            ) AS applied
        ) AS w
        WHERE NOT EXISTS (
            SELECT 1 FROM held_leads AS e
            WHERE e.email = h.email AND (e.held_since, e.event_id) < (h.held_since, h.event_id)
        )
          AND (w.applied
               OR h.held_since <= clock_timestamp() - make_interval(secs => :longest)
               OR (h.held_since <= clock_timestamp() - make_interval(secs => :bound)
                   AND NOT EXISTS (
                       SELECT 1
                       FROM json_each_text(h.watermark) AS w(key, value)
                       JOIN applied_offsets AS a
                         ON a.topic = split_part(w.key, ':', 1)
                        AND a.partition = split_part(w.key, ':', 2)::int
                       WHERE a.next_offset < w.value::bigint
                         AND a.advanced_at > clock_timestamp() - make_interval(secs => :bound)
                   )))
        ORDER BY h.held_since, h.event_id
        LIMIT :limit
        FOR UPDATE OF h SKIP LOCKED
    ),
    released AS (
        DELETE FROM held_leads AS d
        USING ready AS r
        WHERE d.event_id = r.event_id
        RETURNING d.event_id, d.person, d.watermark, d.held_since, r.applied,
                  extract(epoch FROM clock_timestamp() - d.held_since)::float AS waited
    )
    SELECT n.some_held, r.*
    FROM (SELECT EXISTS (SELECT 1 FROM held_leads) AS some_held) AS n
    LEFT JOIN released AS r ON true
    """
).columns(
    sa.column("some_held", sa.Boolean),
    sa.column("event_id", sa.String),
    sa.column("person", sa.JSON),
    sa.column("watermark", sa.JSON),
    sa.column("held_since", sa.DateTime(timezone=True)),
    sa.column("applied", sa.Boolean),
    sa.column("waited", sa.Float),
)


async def release_held_leads(
    session: AsyncSession, ctx: RouterContext, bound: timedelta, limit: int = 1000
) -> list[NewPerson] | None:
    """The held leads that may be routed now, oldest first, deleted from ``held_leads`` by
    this transaction (the caller routes them in it); None when none is held.

    A lead is routed without the state it waits for once ``bound`` has passed with none
    of its partitions moving (a stalled partition), or once it has waited
    ``CRM_STATE_WAIT_MAX_S`` (partitions catching up too slowly). Rows another instance
    is releasing are skipped, not waited for.
    """
    longest = max(ctx.settings.crm_state_wait_max_s, bound.total_seconds())
    rows = (
        await session.execute(
            _RELEASE, {"limit": limit, "bound": bound.total_seconds(), "longest": longest}
        )
    ).all()
    if not rows or not rows[0].some_held:
        return None
    released = sorted((r for r in rows if r.event_id is not None), key=_held_order)
    without = [r for r in released if not r.applied]
    # One look-up for every lead routed without its state, to say which partitions.
    applied = (
        await applied_offsets(session, {k for r in without for k in r.watermark}) if without else {}
    )
    people: list[NewPerson] = []
    for row in released:
        person = person_from_json(row.person)
        if row.applied:
            LEADS_HELD.labels("applied").inc()
        else:
            missing = unmet(row.watermark, applied)
            LEADS_HELD.labels("bound").inc()
            person = _routed_without(person, missing or row.watermark, row.waited)
            log.warning(
                "lead routed without the CRM state it waited for",
                extra={"lead_event_id": person.event_id, "partitions": sorted(missing)},
            )
        HOLD_SECONDS.observe(row.waited)
        people.append(person)
    return people


def _held_order(row: Any) -> tuple[datetime, str]:
    return row.held_since, row.event_id


def _routed_without(person: NewPerson, missing: Mapping[str, int], waited_s: float) -> NewPerson:
    partitions = ", ".join(sorted(missing))
    note = f"routed after waiting {waited_s:.1f} s for CRM changes not yet applied on {partitions}"
    return NewPerson(**{**_fields(person), "waited": note})


def _fields(person: NewPerson) -> dict[str, Any]:
    return {name: getattr(person, name) for name in NewPerson.__dataclass_fields__}


def person_to_json(person: NewPerson) -> dict[str, Any]:
    fields = _fields(person)
    fields["occurred_at"] = person.occurred_at.isoformat()
    ref = person.source_ref
    fields["source_ref"] = ref.model_dump(mode="json") if ref is not None else None
    fields["state_offsets"] = None  # the held row's watermark says what is still needed
    return fields


def person_from_json(value: Mapping[str, Any]) -> NewPerson:
    fields = dict(value)
    fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
    ref = fields.get("source_ref")
    fields["source_ref"] = SourceRef.model_validate(ref) if ref is not None else None
    return NewPerson(**fields)
