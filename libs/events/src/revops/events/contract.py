"""The read contract's building blocks (docs/API.md), written once for every service: the
list envelope and how a page of it is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list: its items, and how many items the filters match in all."""

    items: list[Item] = Field(description="the items of this page, in the list's order")
    total: int = Field(description="every item the filters match, all pages together")
    limit: int = Field(description="the most items a page holds, as asked (1 to 500)")
    offset: int = Field(description="how many items come before this page, as asked")


async def read_page(
    session: AsyncSession, query: Select[Any], order: Sequence[Any], limit: int, offset: int
) -> tuple[list[Row[Any]], int]:
    """The rows of one page of ``query`` (filtered, not yet ordered) and the count of every
    row it matches. The count reads the filtered rows once more; no list here is large
    enough for that to cost more than the page (bench/list_endpoints.py)."""
    rows = list(await session.execute(query.order_by(*order).limit(limit).offset(offset)))
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)  # the whole list fits in this page: nothing more to count
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return rows, int(total or 0)
