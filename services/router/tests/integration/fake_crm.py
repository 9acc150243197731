"""A small HTTP server speaking the parts of HubSpot's and Salesforce's APIs the owner
write-back uses, with their status codes and error bodies; it can rate-limit, be
unavailable, or hold calls unanswered until released, and counts the calls in flight."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

TOKEN = "crm-test-token"


@dataclass
class FakeCrm:
    hubspot_owner: dict[str, str] = field(default_factory=dict)
    salesforce_owner: dict[str, str] = field(default_factory=dict)
    salesforce_opportunity_owner: dict[str, str] = field(default_factory=dict)
    hubspot_deal_owner: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    call_times: dict[str, list[float]] = field(default_factory=dict)  # id -> monotonic
    rate_limit_first: set[str] = field(default_factory=set)  # ids answered 429 once
    rate_limited: dict[str, int] = field(default_factory=dict)  # id -> 429s still to give
    retry_after: str = "1"
    unavailable: dict[str, str | None] = field(default_factory=dict)  # id -> Retry-After
    salesforce_missing: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)  # ids whose calls wait for `released`
    hold_every_call: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    async def _answer(self, object_id: str, answer: Callable[[], Awaitable[Response]]) -> Response:
        """Counts the call while it is open; a held call is answered once released."""
        self.call_times.setdefault(object_id, []).append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold_every_call or object_id in self.held:
                await self.released.wait()
            return await answer()
        finally:
            self.in_flight -= 1

    def _refusal(self, object_id: str) -> Response | None:
        """A 429 or 503 this id is due, in HubSpot's words (the senders read only the status
        and Retry-After)."""
        if object_id in self.rate_limit_first or self.rate_limited.get(object_id, 0) > 0:
            self.rate_limit_first.discard(object_id)
            if object_id in self.rate_limited:
                self.rate_limited[object_id] -= 1
            return JSONResponse(
                {
                    "status": "error",
                    "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT",
                    "policyName": "SECONDLY",
                },
                status_code=429,
                headers={"Retry-After": self.retry_after},
            )
        if object_id in self.unavailable:
            wait = self.unavailable[object_id]
            return JSONResponse(
                {"status": "error", "message": "Service unavailable"},
                status_code=503,
                headers={"Retry-After": wait} if wait is not None else None,
            )
        return None

    def app(self) -> FastAPI:
        app = FastAPI()

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {TOKEN}"

        @app.patch("/crm/v3/objects/contacts/{contact_id}")
        async def hubspot_contact(contact_id: str, request: Request) -> Response:
            self.calls.append(("hubspot", contact_id))
            return await self._answer(contact_id, lambda: hubspot_answer(contact_id, request))

        async def hubspot_answer(contact_id: str, request: Request) -> Response:
            if not authorised(request):
                return JSONResponse(
                    {
                        "status": "error",
                        "message": "Authentication credentials not found.",
                        "category": "INVALID_AUTHENTICATION",
                    },
                    status_code=401,
                )
            refusal = self._refusal(contact_id)
            if refusal is not None:
                return refusal
            body: dict[str, Any] = await request.json()
            owner = body["properties"]["hubspot_owner_id"]
            self.hubspot_owner[contact_id] = owner
            return JSONResponse(
                {
                    "id": contact_id,
                    "properties": {"hubspot_owner_id": owner},
                    "createdAt": "2026-03-02T09:00:00Z",
                    "updatedAt": "2026-03-02T09:00:01Z",
                    "archived": False,
                }
            )

        @app.patch("/crm/v3/objects/deals/{deal_id}")
        async def hubspot_deal(deal_id: str, request: Request) -> Response:
            self.calls.append(("hubspot_deal", deal_id))
            if not authorised(request):
                return JSONResponse({"status": "error"}, status_code=401)
            body: dict[str, Any] = await request.json()
            self.hubspot_deal_owner[deal_id] = body["properties"]["hubspot_owner_id"]
            return JSONResponse({"id": deal_id, "properties": body["properties"]})

        @app.patch("/services/data/{version}/sobjects/Opportunity/{opportunity_id}")
        async def salesforce_opportunity(
            version: str, opportunity_id: str, request: Request
        ) -> Response:
            self.calls.append(("salesforce_opportunity", opportunity_id))
            if not authorised(request):
                return JSONResponse([{"errorCode": "INVALID_SESSION_ID"}], status_code=401)
            body = await request.json()
            self.salesforce_opportunity_owner[opportunity_id] = body["OwnerId"]
            return Response(status_code=204)

        @app.patch("/services/data/{version}/sobjects/Lead/{lead_id}")
        async def salesforce_lead(version: str, lead_id: str, request: Request) -> Response:
            self.calls.append(("salesforce", lead_id))
            return await self._answer(lead_id, lambda: salesforce_answer(lead_id, request))

        async def salesforce_answer(lead_id: str, request: Request) -> Response:
            if not authorised(request):
                return JSONResponse(
                    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                    status_code=401,
                )
            refusal = self._refusal(lead_id)
            if refusal is not None:
                return refusal
            if lead_id in self.salesforce_missing:
                return JSONResponse(
                    [
                        {
                            "errorCode": "NOT_FOUND",
                            "message": "The requested resource does not exist",
                        }
                    ],
                    status_code=404,
                )
            body = await request.json()
            self.salesforce_owner[lead_id] = body["OwnerId"]
            return Response(status_code=204)

        return app


@contextlib.asynccontextmanager
async def running_fake_crm() -> AsyncIterator[FakeCrm]:
    crm = FakeCrm()
    server = uvicorn.Server(
        uvicorn.Config(crm.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no started event to await
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    crm.url = f"http://127.0.0.1:{port}"
    try:
        yield crm
    finally:
        crm.released.set()  # uvicorn waits for open requests before it stops
        server.should_exit = True
        await task
