"""The read contract's building blocks (docs/API.md), written once for every service: the
list envelope and how a page of it is read, money as a string with two decimals, and the
refusals of a body that is not JSON (400) and of an unknown filter value (422 naming it)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

CENTS = Decimal("0.01")


def two_decimals(value: Decimal) -> str:
    """``Decimal("1200.5")`` as ``"1200.50"``: a float would lose cents, and a reader
    should not have to guess how many decimals a sum kept."""
    return str(Decimal(value).quantize(CENTS))


# An amount of money: held as a Decimal, answered as a string with two decimals.
Money = Annotated[
    Decimal,
    PlainSerializer(two_decimals, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1200.50"]},
        mode="serialization",
    ),
]

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


# pydantic's error types for a value outside a fixed set (a Literal, an Enum).
_NOT_ONE_OF = ("literal_error", "enum")


async def refuse_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, but for the two refusals the contract words differently: a body that
    is not JSON is a 400 naming where it breaks, and a value outside a fixed set names the
    value and the ones allowed."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            where = error.get("loc", ("body", 0))[-1]
            why = (error.get("ctx") or {}).get("error", "not JSON")
            return JSONResponse(
                {"detail": f"the body is not JSON: {why} (at character {where})"}, 400
            )
    if not any(error.get("type") in _NOT_ONE_OF for error in errors):
        return await request_validation_exception_handler(request, exc)
    for error in errors:
        if error.get("type") in _NOT_ONE_OF:
            expected = (error.get("ctx") or {}).get("expected", "")
            error["msg"] = f"unknown value {error.get('input')!r}: expected {expected}"
    return await request_validation_exception_handler(request, RequestValidationError(errors))
