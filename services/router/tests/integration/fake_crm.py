"""A small HTTP server speaking the parts of HubSpot's and Salesforce's APIs the owner
write-back uses, with their status codes and error bodies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
    calls: list[tuple[str, str]] = field(default_factory=list)
    rate_limit_first: set[str] = field(default_factory=set)  # ids answered 429 once
    salesforce_missing: set[str] = field(default_factory=set)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {TOKEN}"

        @app.patch("/crm/v3/objects/contacts/{contact_id}")
        async def hubspot_contact(contact_id: str, request: Request) -> Response:
            self.calls.append(("hubspot", contact_id))
            if not authorised(request):
                return JSONResponse(
                    {
                        "status": "error",
                        "message": "Authentication credentials not found.",
                        "category": "INVALID_AUTHENTICATION",
                    },
                    status_code=401,
                )
            if contact_id in self.rate_limit_first:
                self.rate_limit_first.discard(contact_id)
                return JSONResponse(
                    {
                        "status": "error",
                        "message": "You have reached your secondly limit.",
                        "errorType": "RATE_LIMIT",
                        "policyName": "SECONDLY",
                    },
                    status_code=429,
                    headers={"Retry-After": "1"},
                )
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

        @app.patch("/services/data/{version}/sobjects/Lead/{lead_id}")
        async def salesforce_lead(version: str, lead_id: str, request: Request) -> Response:
            self.calls.append(("salesforce", lead_id))
            if not authorised(request):
                return JSONResponse(
                    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                    status_code=401,
                )
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
        server.should_exit = True
        await task
