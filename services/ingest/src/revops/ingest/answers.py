"""What ingest answers: the JSON bodies of an accepted or refused webhook, Salesforce's
SOAP Ack and faults, and how the OpenAPI document describes them."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

import orjson
from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from revops.ingest.domain.errors import IngestError, MalformedEvent

SOAP_ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
    b" <soapenv:Body>\n"
    b'  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    b"   <Ack>true</Ack>\n"
    b"  </notificationsResponse>\n"
    b" </soapenv:Body>\n"
    b"</soapenv:Envelope>\n"
)


class Accepted(BaseModel):
    accepted: int = Field(description="events the webhook carried, all now on Kafka")
    request_id: str = Field(
        description="the request's id in the logs: the caller's X-Request-ID, or a new one"
    )


class Refused(BaseModel):
    detail: str = Field(description="why the webhook was refused (nothing of it was published)")
    field: str | None = Field(
        default=None, description="the field that is wrong (422); null: the whole request"
    )
    index: int | None = Field(
        default=None, description="which event of the body, from 0 (422); null: not one event"
    )
    request_id: str = Field(
        description="the request's id in the logs: the caller's X-Request-ID, or a new one"
    )


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": Refused, "description": "not JSON / not XML"},
    401: {"model": Refused, "description": "bad or missing signature"},
    413: {"model": Refused, "description": "body over the size limit"},
    415: {"model": Refused, "description": "wrong content type"},
    422: {"model": Refused, "description": "invalid content: the field and event index"},
    429: {"model": Refused, "description": "too many webhooks in flight: retry after Retry-After"},
    503: {"model": Refused, "description": "Kafka unavailable: retry after Retry-After"},
}

SOAP_XML = {"text/xml": {"schema": {"type": "string"}}}
# Salesforce reads SOAP: the Ack, or a fault (outbound messages are not signed: the
# organisation and, when configured, the source address are checked instead).
SOAP_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": SOAP_XML, "description": "the SOAP Ack"},
    **{
        status: {"content": SOAP_XML, "description": f"SOAP fault: {why}"}
        for status, why in {
            400: "not XML, or forbidden XML (a DTD, an entity)",
            403: "organisation or source address not allowed",
            413: "body over the size limit",
            415: "wrong content type",
            422: "invalid notification: the field and its index",
            503: "Kafka unavailable: retry after Retry-After",
        }.items()
    },
}


def json_success(count: int, request_id: str) -> Response:
    return Response(
        orjson.dumps({"accepted": count, "request_id": request_id}),
        media_type="application/json",
    )


def json_failure(status: int, message: str, error: IngestError | None, request_id: str) -> Response:
    content: dict[str, Any] = {"detail": message, "request_id": request_id}
    if isinstance(error, MalformedEvent):
        content["field"] = error.field
        content["index"] = error.index
    return JSONResponse(content, status_code=status)


def soap_ack(count: int, request_id: str) -> Response:
    return Response(SOAP_ACK, media_type="text/xml; charset=utf-8")


def soap_fault(status: int, message: str, error: IngestError | None, request_id: str) -> Response:
    code = "soapenv:Server" if status >= 500 else "soapenv:Client"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
        " <soapenv:Body>\n"
        "  <soapenv:Fault>\n"
        f"   <faultcode>{code}</faultcode>\n"
        f"   <faultstring>{escape(message)} (request {escape(request_id)})</faultstring>\n"
        "  </soapenv:Fault>\n"
        " </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )
    return Response(body.encode(), status_code=status, media_type="text/xml; charset=utf-8")
