"""Routing policies as state: the ``routing_policy.changed`` events on the roster topic,
applied like the reps' changes, numbered in the topic's order (so a rebuild gives every
version the same number), and the policy in force read once per batch."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import RoutingPolicyChangedEvent
from revops.router import models as m
from revops.router.context import RouterContext
from revops.router.domain.territories import InvalidPolicy, TerritoryPolicy, default_policy
from revops.router.policy_document import parse_policy

# Where the batch keeps the policy it read, for the rest of its transaction.
POLICY_CACHE = "router.policy"


async def apply_policy_changes(
    session: AsyncSession, events: Sequence[RoutingPolicyChangedEvent]
) -> None:
    """Store each change as the next version. The API published only valid documents; one
    that no longer parses (a newer router refusing an older document) is stored anyway and
    skipped when read, so the versions stay numbered as on the first run."""
    if not events:
        return
    # The roster has one partition and one consumer at a time: nobody else numbers now.
    latest = await session.scalar(select(func.max(m.routing_policies.c.version))) or 0
    rows = [
        {
            "version": latest + i,
            "event_id": e.id,
            "document": e.payload.document,
            "changed_by": e.payload.changed_by,
            "changed_at": e.occurred_at,
        }
        for i, e in enumerate(events, start=1)
    ]
    await session.execute(pg_insert(m.routing_policies).on_conflict_do_nothing(), rows)
    session.info.pop(POLICY_CACHE, None)


def configured_policy(ctx: RouterContext) -> TerritoryPolicy:
    """Version 0: the configuration's policy (``ROUTING_POLICY_FILE``, else the regions by
    country of ``REGION_MAP`` and ``FALLBACK_REGION``), before any change was applied."""
    path = ctx.settings.routing_policy_file
    if path is not None:
        return parse_policy(_read(str(path)), 0)
    return default_policy(ctx.region_map, ctx.policy.fallback_region)


@functools.lru_cache(maxsize=4)
def _read(path: str) -> str:
    """The policy file as it was at start (checked by ``main`` before consuming)."""
    with open(path, encoding="utf-8") as file:
        return file.read()


@functools.lru_cache(maxsize=8)
def _parsed(text: str, version: int) -> TerritoryPolicy | None:
    try:
        return parse_policy(text, version)
    except InvalidPolicy:
        return None


async def current_policy(session: AsyncSession, ctx: RouterContext) -> TerritoryPolicy:
    """The newest applied version that parses, else the configuration's."""
    cached = session.info.get(POLICY_CACHE)
    if isinstance(cached, TerritoryPolicy):
        return cached
    policy = configured_policy(ctx)
    rows = await session.execute(
        select(m.routing_policies.c.version, m.routing_policies.c.document)
        .order_by(m.routing_policies.c.version.desc())
        # The newest parses unless a newer router refuses an older document.
        .limit(16)
    )
    for version, document in rows:
        parsed = _parsed(document, version)
        if parsed is not None:
            policy = parsed
            break
    session.info[POLICY_CACHE] = policy
    return policy
