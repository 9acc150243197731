"""The read contract's shared pieces (docs/API.md): money answered as a string with two
decimals and documented so, a body that is not JSON refused with a 400 saying where it
breaks, a value outside a fixed set refused with a 422 naming it and the known ones, and
time parameters: a day is the company's whole day, a moment needs its zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from revops.events.contract import MomentOrDay, Money, end_of, refuse_request, start_of

LOS_ANGELES = "America/Los_Angeles"


class Deal(BaseModel):
    amount: Money | None = Field(description="what it is worth")


class Body(BaseModel):
    count: int


def app() -> FastAPI:
    served = FastAPI()
    served.add_exception_handler(RequestValidationError, refuse_request)

    @served.get("/deals")
    async def deals(stage: Literal["open", "won"] = "open", count: int = 1) -> list[Deal]:
        return [Deal(amount=a) for a in (Decimal(0), Decimal("12.5"), Decimal("-3"), None)]

    @served.post("/bodies")
    async def bodies(body: Body) -> Body:
        return body

    return served


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t")


async def test_money_is_a_string_with_two_decimals_and_documented_as_one() -> None:
    async with client() as c:
        answer = await c.get("/deals")
    assert [d["amount"] for d in answer.json()] == ["0.00", "12.50", "-3.00", None]
    schema = app().openapi()["components"]["schemas"]["Deal"]["properties"]["amount"]
    assert {"type": "null"} in schema["anyOf"]
    [money] = [kind for kind in schema["anyOf"] if kind.get("type") == "string"]
    assert money["pattern"] == r"^-?\d+\.\d{2}$"
    assert schema["description"] == "what it is worth"


async def test_a_body_that_is_not_json_is_a_400_naming_where_it_breaks() -> None:
    json = {"Content-Type": "application/json"}
    async with client() as c:
        broken = await c.post("/bodies", content=b'{"count": 1,', headers=json)
        not_utf8 = await c.post("/bodies", content=b"\xff", headers=json)
        wrong = await c.post("/bodies", json={"count": "many"})
    assert broken.status_code == 400, broken.text
    assert broken.json()["detail"].startswith("the body is not JSON: ")
    assert "(at character 12)" in broken.json()["detail"]
    assert not_utf8.status_code == 400, not_utf8.text
    # JSON with a wrong value is still FastAPI's 422 naming the field.
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "count"]


async def test_an_unknown_value_of_a_fixed_set_is_a_422_naming_it_and_the_known_ones() -> None:
    async with client() as c:
        unknown = await c.get("/deals", params={"stage": "lost"})
        both = await c.get("/deals", params={"stage": "lost", "count": "x"})
        known = await c.get("/deals", params={"stage": "won"})
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error["loc"] == ["query", "stage"]
    assert error["msg"] == "unknown value 'lost': expected 'open' or 'won'"
    # Other errors of the same request keep FastAPI's words.
    assert [e["loc"][-1] for e in both.json()["detail"]] == ["stage", "count"]
    assert "unknown value" not in both.json()["detail"][1]["msg"]
    assert known.status_code == 200


def span_app() -> FastAPI:
    served = FastAPI()
    served.add_exception_handler(RequestValidationError, refuse_request)

    @served.get("/span")
    async def span(start: MomentOrDay, end: MomentOrDay) -> dict[str, datetime]:
        return {"from": start_of(start, LOS_ANGELES), "to": end_of(end, LOS_ANGELES)}

    return served


async def test_a_day_is_the_companys_whole_day_and_a_moment_needs_its_zone() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=span_app()), base_url="http://t"
    ) as c:
        # 8 March 2026: the clocks go forward in Los Angeles, a day of 23 hours.
        day = await c.get("/span", params={"start": "2026-03-08", "end": "2026-03-08"})
        moments = await c.get(
            "/span",
            params={"start": "2026-03-08T01:00:00+01:00", "end": "2026-03-09T00:00:00Z"},
        )
        naive = await c.get("/span", params={"start": "2026-03-08T00:00:00", "end": "2026-03-09"})
        garbage = await c.get("/span", params={"start": "last week", "end": "2026-03-09"})
        far = await c.get("/span", params={"start": "1600-01-01T00:00:00Z", "end": "2026-03-09"})
    assert day.json() == {"from": "2026-03-08T08:00:00Z", "to": "2026-03-09T07:00:00Z"}
    assert moments.json() == {"from": "2026-03-08T00:00:00Z", "to": "2026-03-09T00:00:00Z"}
    for refused in (naive, garbage, far):
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["detail"]
        assert error["loc"] == ["query", "start"]
    assert "needs a time zone" in naive.json()["detail"][0]["msg"]
    assert "a date (2026-12-03) or a date-time with its zone" in garbage.json()["detail"][0]["msg"]
    assert "between 1700-01-01 and 4000-12-31" in far.json()["detail"][0]["msg"]
