"""Every operation of every service's OpenAPI document, fuzzed by schemathesis with the
admin token: no answer is a 5xx, and every answer's status, content type and body are
ones the document declares. The four apps run in this process with their real
lifespans, against the real broker and database (their own schemas in the test
database, a topic prefix of this module's own).

The webhook routes check signatures that schemathesis cannot make: their 401s are part
of the contract, so they must be documented like every other answer.

The apps run on an event loop of their own, in a thread, for the whole module:
schemathesis' pytest plugin is synchronous, and its own ASGI client would start and stop
every app's lifespan around each operation."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from revops.attribution.main import SPEC as ATTRIBUTION_SPEC
from revops.attribution.main import build_app as build_attribution
from revops.attribution.settings import AttributionSettings
from revops.events.settings import KafkaSettings
from revops.events.testing import fresh_schema, service_settings
from revops.ingest.main import build_app as build_ingest
from revops.ingest.settings import IngestSettings
from revops.renewals.main import SPEC as RENEWALS_SPEC
from revops.renewals.main import build_app as build_renewals
from revops.renewals.settings import RenewalsSettings
from revops.router.main import SPEC as ROUTER_SPEC
from revops.router.main import build_app as build_router
from revops.router.settings import RouterSettings

T = TypeVar("T")

pytestmark = [
    pytest.mark.infra,
    # schemathesis' own strategies draw from `random` (Hypothesis seeds it per example).
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

ADMIN = {"Authorization": "Bearer dev-admin-token"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BUILDERS: dict[str, Callable[..., FastAPI]] = {
    "ingest": build_ingest,
    "router": build_router,
    "attribution": build_attribution,
    "renewals": build_renewals,
}
# The documents are the code's: read from apps built with the default settings (nothing
# connects before a lifespan starts); the apps under test are built by `services` below.
SCHEMAS = {
    name: schemathesis.openapi.from_dict(build().openapi()) for name, build in BUILDERS.items()
}
SERVICE_OF_TITLE = {schema.raw_schema["info"]["title"]: name for name, schema in SCHEMAS.items()}

# Repeatable in CI, and well within two minutes for the four services on two cores;
# REVOPS_FUZZ_EXAMPLES=500 digs deeper on demand.
FUZZ = settings(
    max_examples=int(os.environ.get("REVOPS_FUZZ_EXAMPLES", "50")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class Services:
    """The four apps, started with their lifespans on an event loop in a thread."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="apps under test")
        self.stack = AsyncExitStack()
        self.clients: dict[str, httpx.AsyncClient] = {}

    def run(self, work: Awaitable[T], timeout_s: float = 120) -> T:
        async def awaited() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(awaited(), self.loop).result(timeout_s)

    async def _start(self) -> None:
        router = service_settings(RouterSettings, "router", self.prefix)
        attribution = service_settings(AttributionSettings, "attribution", self.prefix)
        renewals = service_settings(RenewalsSettings, "renewals", self.prefix)
        await fresh_schema(ROUTER_SPEC, router.resolved_database_url())
        await fresh_schema(ATTRIBUTION_SPEC, attribution.resolved_database_url())
        await fresh_schema(RENEWALS_SPEC, renewals.resolved_database_url())
        apps = {
            "ingest": build_ingest(IngestSettings(topic_prefix=self.prefix)),
            "router": build_router(router),
            "attribution": build_attribution(attribution),
            "renewals": build_renewals(renewals),
        }
        for name, app in apps.items():
            await self.stack.enter_async_context(
                LifespanManager(app, startup_timeout=60, shutdown_timeout=30)
            )
            self.clients[name] = await self.stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )

    @classmethod
    def started(cls, prefix: str) -> Iterator[Services]:
        services = cls(prefix)
        services.thread.start()
        try:
            services.run(services._start())
            yield services
        finally:
            services.run(services.stack.aclose())
            services.loop.call_soon_threadsafe(services.loop.stop)
            services.thread.join(30)
            services.loop.close()

    def send(self, case: schemathesis.Case[Any]) -> httpx.Response:
        """The case as schemathesis would send it (its headers, the admin token unless the
        case is about a missing one), through the app's own client."""
        name = SERVICE_OF_TITLE[case.operation.schema.raw_schema["info"]["title"]]
        sent = case.as_transport_kwargs(base_url=f"http://{name}", headers=ADMIN)
        return self.run(self.clients[name].request(**as_httpx(sent)))


def as_httpx(sent: dict[str, Any]) -> dict[str, Any]:
    """schemathesis' `requests` keyword arguments as httpx's, the body's bytes unchanged."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in sent["headers"].items():
        raw = str(value)
        try:
            encoded = raw.encode("latin-1")  # what `requests` puts on the wire
        except UnicodeEncodeError:
            encoded = raw.encode("utf-8")
        headers.append((key.encode("latin-1"), encoded))
    if sent.get("cookies"):
        cookie = "; ".join(f"{k}={v}" for k, v in sent["cookies"].items())
        headers.append((b"cookie", cookie.encode("latin-1")))
    request: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "params": sent.get("params") or None,
        "headers": headers,
    }
    if "json" in sent:
        request["content"] = json.dumps(sent["json"], allow_nan=False).encode()
    elif isinstance(sent.get("data"), str | bytes):
        request["content"] = sent["data"]
    elif sent.get("data") is not None:
        request["data"] = sent["data"]
    unknown = set(sent) - {"method", "url", "params", "headers", "cookies", "json", "data"}
    assert not unknown, f"not translated to httpx: {unknown}"
    return request


@pytest.fixture(scope="module")
def services(kafka_settings: KafkaSettings) -> Iterator[Services]:
    yield from Services.started(kafka_settings.topic_prefix)


@FUZZ
@schemathesis.pytest.parametrize(**SCHEMAS)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case[Any], services: Services
) -> None:
    response = services.send(case)
    # /readyz answers its documented 503 while the shared broker is slow to answer a ping;
    # any other status it is not documented to give still fails status_code_conformance.
    readiness = case.operation.path == "/readyz"
    checks = [c for c in CHECKS if not (readiness and c is not_a_server_error)]
    case.validate_response(response, checks=checks, headers=ADMIN)
