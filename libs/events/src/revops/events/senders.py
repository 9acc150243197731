"""Sign webhooks the way their real senders do, for the demo, end-to-end tests and load
generators. (Ingest's own tests check these formats against the official HubSpot and
Standard Webhooks libraries.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import unquote

# The characters HubSpot decodes in the URI before signing (v3).
_HUBSPOT_DECODED = (
    "%3A",
    "%2F",
    "%3F",
    "%40",
    "%21",
    "%24",
    "%27",
    "%28",
    "%29",
    "%2A",
    "%2C",
    "%3B",
)


def hubspot_v3_headers(
    secret: str, url: str, body: bytes, *, now_ms: int | None = None
) -> dict[str, str]:
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    uri = url
    for encoded in _HUBSPOT_DECODED:
        uri = uri.replace(encoded, unquote(encoded)).replace(encoded.lower(), unquote(encoded))
    message = b"POST" + uri.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": signature.decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def standard_webhook_headers(
    whsec: str, msg_id: str, body: bytes, *, now_s: int | None = None
) -> dict[str, str]:
    key = base64.b64decode(whsec.removeprefix("whsec_"))
    timestamp = str(now_s if now_s is not None else int(time.time()))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }


def relay_headers(secret: str, body: bytes, *, now_s: int | None = None) -> dict[str, str]:
    """Headers of our Salesforce change-event relay: HMAC-SHA256 of "<ts>." + body."""
    timestamp = now_s if now_s is not None else int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Revops-Timestamp": str(timestamp),
        "X-Revops-Signature": "sha256=" + digest.hexdigest(),
    }


def outbound_message(org_id: str, notifications: list[tuple[str, str, dict[str, str]]]) -> bytes:
    """A Salesforce Outbound Message: (notification id, sObject type, fields) each."""
    parts = []
    for notification_id, sobject, fields in notifications:
        inner = "".join(f"<sf:{k}>{_xml(v)}</sf:{k}>" for k, v in fields.items())
        parts.append(
            f"<Notification><Id>{notification_id}</Id>"
            f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{inner}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0</PartnerUrl>"
        + "".join(parts)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
