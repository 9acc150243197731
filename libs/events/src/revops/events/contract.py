"""The read contract's building blocks (docs/API.md), written once for every service: the
list envelope and how a page of it is read, money as a string with two decimals, time
parameters (an aware moment, or a day of the company's), and the refusals of a body that
is not JSON (400) and of an unknown filter value (422 naming it)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
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
    row it matches (each list's filters have indexes to count from: bench/list_endpoints.py)."""
    rows = list(await session.execute(query.order_by(*order).limit(limit).offset(offset)))
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)  # the whole list fits in this page: nothing more to count
    total = await session.scalar(count_of(query))
    return rows, int(total or 0)


def count_of(query: Select[Any]) -> Select[Any]:
    """How many rows ``query`` matches: Postgres flattens the subquery, so with an index
    on the filter's columns the count reads that index alone."""
    return select(func.count()).select_from(query.order_by(None).subquery())


# Salesforce's own range for a date-time: every moment of the CRMs' data lies within it,
# and the rules' arithmetic on a moment asked for (a week before, the next snapshot in
# Pacific time) cannot leave Python's range of dates.
FIRST_MOMENT = datetime(1700, 1, 1, tzinfo=UTC)
LAST_MOMENT = datetime(4000, 12, 31, tzinfo=UTC)


def within_the_crm_range(value: datetime) -> datetime:
    """An aware moment within the CRMs' range; a time without a zone means nothing sure
    (the reader's? the server's?), so it is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone (e.g. 2026-03-14T01:00:00Z)")
    if not FIRST_MOMENT <= value <= LAST_MOMENT:
        raise ValueError(
            f"must be between {FIRST_MOMENT:%Y-%m-%d} and {LAST_MOMENT:%Y-%m-%d} (UTC)"
        )
    return value


# A time parameter: a date-time with its zone, within the CRMs' range.
Moment = Annotated[datetime, AfterValidator(within_the_crm_range)]


# --- time parameters -----------------------------------------------------------------------

_A_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _moment_or_day(value: Any) -> Any:
    """``2026-12-03`` is a day; anything else must be a date-time with its zone."""
    if isinstance(value, str):
        text = value.strip()
        if _A_DAY.match(text):
            return date.fromisoformat(text)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                "expected a date (2026-12-03) or a date-time with its zone (2026-12-03T00:00:00Z)"
            ) from None
    if isinstance(value, datetime):
        return within_the_crm_range(value)
    return value


# A time parameter that also takes a day: the day is the company's (its first moment for
# a start, its end for an end; see ``start_of`` and ``end_of``).
MomentOrDay = Annotated[datetime | date, BeforeValidator(_moment_or_day)]


def _first_moment(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def start_of(value: datetime | date, zone: str) -> datetime:
    """A moment as it is (in UTC); a day's first moment in the company's time zone."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return _first_moment(value, zone)


def end_of(value: datetime | date, zone: str) -> datetime:
    """A moment as it is (in UTC); a day's end in the company's time zone: the next day's
    first moment, which an end excludes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return _first_moment(value + timedelta(days=1), zone)


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
