"""A small HTTP server speaking Salesforce's REST upsert by External ID for Opportunity,
with its status codes and error bodies (201 created, 200 updated, 401, 400, 429/503)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

TOKEN = "00Dxx0000000001!sf-test-token"


@dataclass
class FakeSalesforce:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # by external id
    calls: list[tuple[str, int]] = field(default_factory=list)
    throttle: dict[str, int] = field(default_factory=dict)  # key -> 429s still to answer
    unavailable: dict[str, int] = field(default_factory=dict)  # key -> 503s still to answer
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.patch("/services/data/{version}/sobjects/Opportunity/{field_name}/{key}")
        async def upsert(version: str, field_name: str, key: str, request: Request) -> Response:
            status, response = await self._upsert(field_name, key, request)
            self.calls.append((key, status))
            return response

        return app

    async def _upsert(self, field_name: str, key: str, request: Request) -> tuple[int, Response]:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            body: list[dict[str, Any]] = [
                {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
            ]
            return 401, JSONResponse(body, status_code=401)
        if self.throttle.get(key):
            self.throttle[key] -= 1
            body = [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
            return 429, JSONResponse(body, status_code=429, headers={"Retry-After": "1"})
        if self.unavailable.get(key):
            self.unavailable[key] -= 1
            return 503, JSONResponse([{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}], 503)
        fields: dict[str, Any] = await request.json()
        if field_name != "Renewal_Key__c" or "Name" not in fields or "CloseDate" not in fields:
            body = [
                {
                    "message": "Required fields are missing: [Name, CloseDate]",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": ["Name", "CloseDate"],
                }
            ]
            return 400, JSONResponse(body, status_code=400)
        created = key not in self.records
        record = self.records.setdefault(key, {"Id": f"006FAKE{len(self.records):08d}"})
        record.update(fields)
        saved = {"id": record["Id"], "success": True, "errors": [], "created": created}
        status = 201 if created else 200
        return status, JSONResponse(saved, status_code=status)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running(fake: FakeSalesforce) -> AsyncIterator[FakeSalesforce]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 -- uvicorn exposes a flag, not an event
        await asyncio.sleep(0.05)
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
