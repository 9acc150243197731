"""The queries and bulk writes the router's areas share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    Row,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from revops.events.catalogue import (
    SourceRef,
)
from revops.router import models as m
from revops.router.domain.reps import REGIONS, Rep
from revops.router.domain.rules import (
    Account,
)
from revops.router.domain.working_hours import working_hours_of


def insert_from_arrays(table: sa.Table, columns: Sequence[str], prefix: str = "") -> Any:
    """``INSERT INTO table (columns) SELECT * FROM unnest($1, $2, ...)`` in the arrays'
    order: one statement and one execution for any number of rows (an executemany
    executes, and SQLAlchemy processes the parameters of, every row on its own). The
    arrays are the parameters ``prefix + column``."""
    rows = (
        func.unnest(*(sa.bindparam(prefix + c, type_=ARRAY(table.c[c].type)) for c in columns))
        .table_valued(*columns, with_ordinality="ordinality")
        .render_derived()
    )
    return pg_insert(table).from_select(
        list(columns), select(*(rows.c[c] for c in columns)).order_by(rows.c.ordinality)
    )


def as_arrays(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], prefix: str = ""
) -> dict[str, list[Any]]:
    return {prefix + c: [row.get(c) for row in rows] for c in columns}


async def load_reps(session: AsyncSession) -> list[Rep]:
    cached: list[Rep] | None = session.info.get("router.reps")
    if cached is not None:
        return cached
    rows = await session.execute(select(m.reps).order_by(m.reps.c.position))
    reps = [rep_from_row(r) for r in rows]
    # Reps change only through the API; one batch may reuse what it loaded.
    session.info["router.reps"] = reps
    return reps


def rep_from_row(row: Row[Any]) -> Rep:
    return Rep(
        id=row.id,
        role=row.role,
        region=row.region,
        name=row.name,
        active=row.active,
        certified=row.certified,
        consultant=row.consultant,
        paused=row.paused,
        out_of_office=row.out_of_office,
        weight=row.weight,
        daily_cap=row.daily_cap,
        paired_sdr_id=row.paired_sdr_id,
        position=row.position,
        hours=working_hours_of(row.working_hours),
    )


async def load_account(session: AsyncSession, account_id: str) -> Account | None:
    row = (await session.execute(select(m.accounts).where(m.accounts.c.id == account_id))).first()
    if row is None:
        return None
    region = row.region if row.region in REGIONS else None
    return Account(row.id, row.name or "", region, row.owner_id)


def ref_columns(ref: SourceRef | None) -> dict[str, str | None]:
    if ref is None:
        return {}
    if ref.system == "hubspot":
        return {"hubspot_id": ref.object_id}
    if ref.system == "salesforce" and ref.object_type.lower() == "lead":
        return {"salesforce_id": ref.object_id}
    return {}


async def find_lead(
    session: AsyncSession, email: str | None, ref: SourceRef | None
) -> Row[Any] | None:
    about = [m.leads.c.email == email] if email else []
    about += [getattr(m.leads.c, k) == v for k, v in ref_columns(ref).items() if v]
    if not about:
        return None
    return (await session.execute(select(m.leads).where(or_(*about)).limit(1))).first()
