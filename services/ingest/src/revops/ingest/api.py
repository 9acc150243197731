"""The five webhook endpoints: read the body within the limit, check the sender, parse,
publish, and answer 2xx only once Kafka acknowledged every event of the request.

Answers: 401 bad or missing signature, 403 sender not allowed, 400 not JSON/XML,
422 invalid content (the message names the field and the event's index), 413 too large,
415 wrong content type, 429 with ``Retry-After`` when the source has too many webhooks in
flight (``WEBHOOK_MAX_CONCURRENT``), 503 with ``Retry-After`` when Kafka did not
acknowledge in time.
One bad event refuses the whole request: senders resend whole requests.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Route

from revops.events.catalogue import Envelope
from revops.events.logs import current_request_id, note_on_request
from revops.events.producer import KafkaUnavailable
from revops.ingest.answers import (
    REFUSALS,
    SOAP_ANSWERS,
    Accepted,
    json_failure,
    json_success,
    soap_ack,
    soap_fault,
)
from revops.ingest.domain import forms, hubspot, product, salesforce
from revops.ingest.domain.errors import (
    IngestError,
    SenderNotAllowed,
    UnparsableBody,
)
from revops.ingest.domain.signatures import (
    standard_webhooks_key,
    verify_hubspot,
    verify_relay,
    verify_standard_webhook,
)
from revops.ingest.publishing import KafkaGate
from revops.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "revops_ingest_requests_total", "Webhook requests answered", ["source", "status"]
)
EVENTS = Counter("revops_ingest_events_total", "Events published to Kafka", ["source"])
THROTTLED = Counter(
    "revops_ingest_webhooks_throttled_total",
    "Webhook requests answered 429: the source's concurrent webhooks were at the limit",
    ["source"],
)
LATENCY = Histogram(
    "revops_ingest_request_seconds",
    "Time to answer a webhook, publication included",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2),
)


@functools.cache
def _requests(source: str, status: int) -> Any:
    return REQUESTS.labels(source, str(status))


@functools.cache
def _latency(source: str) -> Any:
    return LATENCY.labels(source)


@functools.cache
def _events(source: str) -> Any:
    return EVENTS.labels(source)


JSON_TYPES = ("application/json",)
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")


class BodyTooLarge(IngestError):
    status = 413


class WrongContentType(IngestError):
    status = 415


# --- reading a request -----------------------------------------------------------------------


def headers_of(request: Request) -> dict[str, str]:
    """The request's headers as one dict with lower-case names, built once per request
    (Starlette's Headers scans the raw list on every lookup)."""
    cached: dict[str, str] | None = request.scope.get("revops.headers")
    if cached is None:
        cached = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.scope["headers"]
        }
        request.scope["revops.headers"] = cached
    return cached


def _media_type(request: Request) -> str:
    return headers_of(request).get("content-type", "").split(";")[0].strip().lower()


def _check_content_type(request: Request, accepted: Sequence[str]) -> None:
    media = _media_type(request)
    if media not in accepted and not (
        "application/json" in accepted
        and media.startswith("application/")
        and media.endswith("+json")
    ):
        raise WrongContentType(
            f"content type {media or 'none'!r} is not accepted: send {' or '.join(accepted)}"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over the limit: by Content-Length
    before reading anything, else while streaming (never buffering more than the limit
    plus one received chunk)."""
    declared = headers_of(request).get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise UnparsableBody("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge(f"body of {int(declared)} bytes, the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnparsableBody(f"body is not JSON: {exc}") from None


def signed_uri(request: Request, public_base_url: str) -> str:
    """The URL the sender called, as it was sent: behind a proxy, from the configured
    public base URL; the path and query are taken raw (still percent-encoded)."""
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    if public_base_url:
        base = public_base_url.rstrip("/")
    else:
        host = headers_of(request).get("host") or "localhost"
        base = f"{scope.get('scheme', 'http')}://{host}"
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def _request_id(request: Request) -> str:
    # The access log's id (the same headers' choice), so every line of a request agrees.
    already = current_request_id.get()
    if already is not None:
        return already
    supplied = headers_of(request).get("x-request-id") or headers_of(request).get(
        "x-hubspot-request-id"
    )
    if supplied and len(supplied) <= 100 and supplied.isprintable():
        return supplied
    return uuid.uuid4().hex


def _secrets(values: Sequence[Any]) -> list[str]:
    return [s.get_secret_value() for s in values]


# --- one request, start to end ------------------------------------------------------------------

Work = Callable[[Request, datetime], Awaitable[list[Envelope]]]


class Webhooks:
    def __init__(self, settings: IngestSettings, gate: KafkaGate) -> None:
        self.settings = settings
        self.gate = gate
        self.signup_keys = [
            standard_webhooks_key(s) for s in _secrets(settings.product_webhook_secrets)
        ]
        self.in_flight: dict[str, int] = {}
        self.custom = settings.salesforce_custom_fields()
        self.company = settings.hubspot_company_properties()

    async def handle(
        self,
        request: Request,
        source: str,
        work: Work,
        *,
        success: Callable[[int, str], Response] | None = None,
        failure: Callable[[int, str, IngestError | None, str], Response] | None = None,
    ) -> Response:
        """Handle the request unless the source already has the most webhooks in flight
        allowed: then 429 at once, before anything is read, so a refusal never concerns
        events that were published (and an admitted request is never cut short)."""
        limit = self.settings.webhook_max_concurrent
        in_flight = self.in_flight.get(source, 0)
        if limit and in_flight >= limit:
            return self._busy(request, source, limit, failure)
        self.in_flight[source] = in_flight + 1
        try:
            return await self._handle(request, source, work, success=success, failure=failure)
        finally:
            self.in_flight[source] -= 1

    def _busy(
        self,
        request: Request,
        source: str,
        limit: int,
        failure: Callable[[int, str, IngestError | None, str], Response] | None,
    ) -> Response:
        THROTTLED.labels(source).inc()
        _requests(source, 429).inc()
        request_id = _request_id(request)
        log.warning("webhook refused: too many in flight", extra={"source": source, "limit": limit})
        response = (failure or json_failure)(
            429, f"{limit} {source} webhooks are in flight already; resend later", None, request_id
        )
        response.headers["Retry-After"] = str(self.settings.webhook_busy_retry_after_s)
        return response

    async def _handle(
        self,
        request: Request,
        source: str,
        work: Work,
        *,
        success: Callable[[int, str], Response] | None = None,
        failure: Callable[[int, str, IngestError | None, str], Response] | None = None,
    ) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        token = current_request_id.set(request_id)
        status = 500
        try:
            now = datetime.now(UTC)
            try:
                events = await work(request, now)
            except IngestError as exc:
                status = exc.status
                log.warning(
                    "webhook refused",
                    extra={"source": source, "status": status, "reason": exc.message},
                )
                return (failure or json_failure)(status, exc.message, exc, request_id)
            try:
                await self.gate.publish(
                    request.app.state.publisher, events, self.settings.publish_deadline_s
                )
            except (KafkaUnavailable, TimeoutError) as exc:
                status = 503
                log.error(
                    "kafka unavailable: webhook not accepted",
                    extra={"source": source, "events": len(events), "error": str(exc)},
                )
                response = (failure or json_failure)(
                    503,
                    "Kafka did not acknowledge in time; resend (a resend is never applied twice)",
                    None,
                    request_id,
                )
                response.headers["Retry-After"] = str(self.settings.retry_after_s)
                return response
            status = 200
            _events(source).inc(len(events))
            if not note_on_request(source=source, events=len(events)):
                log.info("webhook accepted", extra={"source": source, "events": len(events)})
            return (success or json_success)(len(events), request_id)
        finally:
            _requests(source, status).inc()
            _latency(source).observe(time.perf_counter() - started)
            current_request_id.reset(token)

    # --- the five bodies -----------------------------------------------------------------------

    async def hubspot_batch(self, request: Request, now: datetime) -> list[Envelope]:
        body = await self._read(request, JSON_TYPES)
        self._verify_hubspot(request, body, now)
        return hubspot.parse_batch(
            _json(body),
            received_at=now,
            max_events=self.settings.hubspot_max_batch,
            company=self.company,
        )

    async def hubspot_form(self, request: Request, now: datetime) -> list[Envelope]:
        body = await self._read(request, JSON_TYPES)
        self._verify_hubspot(request, body, now)
        query = request.query_params
        rules = forms.FormRules(
            form_type=query.get("form_type") or None,
            campaign=query.get("campaign") or None,
            form_id=query.get("form_id") or None,
            types_by_form_id=self.settings.form_types_by_id,
            fields=self.settings.form_fields,
        )
        return [forms.parse_submission(_json(body), rules, raw_body=body, received_at=now)]

    async def salesforce_outbound(self, request: Request, now: datetime) -> list[Envelope]:
        client = request.client.host if request.client else None
        if not salesforce.source_allowed(client, self.settings.salesforce_source_networks):
            raise SenderNotAllowed(f"source address {client} is not allowed")
        body = await self._read(request, XML_TYPES)
        message = salesforce.parse_outbound(
            body,
            allowed_orgs=self.settings.salesforce_org_ids,
            custom=self.custom,
            received_at=now,
            max_notifications=self.settings.salesforce_max_notifications,
        )
        return message.events

    async def salesforce_events(self, request: Request, now: datetime) -> list[Envelope]:
        body = await self._read(request, JSON_TYPES)
        verify_relay(
            headers=headers_of(request),
            body=body,
            secrets=_secrets(self.settings.salesforce_events_secrets),
            now=now,
            tolerance_s=self.settings.salesforce_events_tolerance_s,
        )
        return salesforce.parse_stream_events(_json(body), custom=self.custom, received_at=now)

    async def product_signup(self, request: Request, now: datetime) -> list[Envelope]:
        body = await self._read(request, JSON_TYPES)
        webhook_id = verify_standard_webhook(
            headers=headers_of(request),
            body=body,
            keys=self.signup_keys,
            now=now,
            tolerance_s=self.settings.product_timestamp_tolerance_s,
        )
        return [product.parse_signup(_json(body), webhook_id=webhook_id, received_at=now)]

    async def _read(self, request: Request, types: Sequence[str]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers_of(request).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"body of {int(declared)} bytes, the limit is {limit}")
        _check_content_type(request, types)
        return await read_body(request, limit)

    def _verify_hubspot(self, request: Request, body: bytes, now: datetime) -> None:
        verify_hubspot(
            headers=headers_of(request),
            method=request.method,
            uri=signed_uri(request, self.settings.public_base_url),
            body=body,
            secrets=_secrets(self.settings.hubspot_client_secrets),
            now=now,
            tolerance_s=self.settings.hubspot_timestamp_tolerance_s,
            versions=self.settings.hubspot_signature_versions,
        )


# --- routes -------------------------------------------------------------------------------------


def _json_body_doc(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


SIGNUP_SCHEMA_REF = {"$ref": "#/components/schemas/SignupWebhook"}


def build_router(settings: IngestSettings, gate: KafkaGate | None = None) -> APIRouter:
    hooks = Webhooks(settings, gate or KafkaGate())
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])

    @router.post(
        "/hubspot",
        response_model=Accepted,
        responses=REFUSALS,
        openapi_extra=_json_body_doc(
            "A HubSpot Webhooks API batch: a JSON array of up to 100 notifications "
            f"({', '.join(hubspot.SUPPORTED_TYPES)} are published; other types are skipped). "
            "Signed v3 (X-HubSpot-Signature-v3 + X-HubSpot-Request-Timestamp within 5 "
            "minutes), or v1/v2 (X-HubSpot-Signature + X-HubSpot-Signature-Version).",
            {"type": "array", "maxItems": 100, "items": {"type": "object"}},
        ),
    )
    async def hubspot_webhooks(request: Request) -> Response:
        return await hooks.handle(request, "hubspot", hooks.hubspot_batch)

    @router.post(
        "/hubspot/forms",
        response_model=Accepted,
        responses=REFUSALS,
        openapi_extra={
            **_json_body_doc(
                "A form submission: a Forms API v3 body (fields, context, submittedAt) or a "
                "workflow 'Send a webhook' contact. Signed per HubSpot v2 or v3. Query "
                "parameters: form_type, campaign, form_id.",
                {"type": "object"},
            ),
            "parameters": [
                {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                for n in ("form_type", "campaign", "form_id")
            ],
        },
    )
    async def hubspot_forms(request: Request) -> Response:
        return await hooks.handle(request, "hubspot_forms", hooks.hubspot_form)

    @router.post(
        "/salesforce/outbound",
        response_class=Response,
        responses=SOAP_ANSWERS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A Salesforce Outbound Message (SOAP 1.1, up to 100 "
                "notifications of Lead, Contact, Account, Opportunity, Task, Event). "
                "Answered with the Ack only once every notification is published, else a "
                "SOAP fault.",
                "content": {"text/xml": {"schema": {"type": "string"}}},
            }
        },
    )
    async def salesforce_outbound(request: Request) -> Response:
        return await hooks.handle(
            request,
            "salesforce_outbound",
            hooks.salesforce_outbound,
            success=soap_ack,
            failure=soap_fault,
        )

    @router.post(
        "/salesforce/events",
        response_model=Accepted,
        responses=REFUSALS,
        openapi_extra=_json_body_doc(
            "Salesforce change events and platform events in the CometD JSON shape (one "
            "message or an array), signed by the relay: X-Revops-Timestamp (unix seconds) "
            'and X-Revops-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>.',
            {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        ),
    )
    async def salesforce_events(request: Request) -> Response:
        return await hooks.handle(request, "salesforce_events", hooks.salesforce_events)

    @router.post(
        "/product/signups",
        response_model=Accepted,
        responses=REFUSALS,
        openapi_extra=_json_body_doc(
            "A product sign-up, signed per Standard Webhooks (webhook-id, webhook-timestamp, "
            "webhook-signature with one or more space-separated v1,<base64> values).",
            SIGNUP_SCHEMA_REF,
        ),
    )
    async def product_signups(request: Request) -> Response:
        return await hooks.handle(request, "product", hooks.product_signup)

    return router


def serving_routes(router: APIRouter) -> list[BaseRoute]:
    """The router's endpoints as plain Starlette routes, to be placed before it.

    Every endpoint takes the raw request (the signature is over the raw bytes), so
    FastAPI's per-request dependency solving and response validation only cost time
    (about a tenth of a single-event request). The APIRoutes stay for the OpenAPI
    document; the first matching route serves, so these do."""
    return [
        Route(route.path, route.endpoint, methods=sorted(route.methods or ()), name=route.name)
        for route in router.routes
        if isinstance(route, APIRoute)
    ]


def document_bodies(app: FastAPI) -> None:
    """Add the sign-up body's models to the OpenAPI components: the endpoint verifies the
    raw bytes before parsing, so FastAPI cannot learn the model from its signature."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        model = product.SignupWebhook.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model.pop("$defs", {}))
        components["SignupWebhook"] = model
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
