"""Who sent it: HubSpot v1/v2/v3, Standard Webhooks, and our Salesforce relay's HMAC.

Every comparison is constant-time and every secret list allows a rotation (old and new
secret both valid for a while). ``now`` is always a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from revops.ingest.domain.errors import SignatureInvalid

# HubSpot's list of the characters to decode in the URI before a v3 check (as its Python
# SDK, hubspot-api-client, decodes them).
# The "?" that starts the query string is never encoded, so decoding it is harmless.
_HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ENCODED = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)


def decode_hubspot_uri(uri: str) -> str:
    return _ENCODED.sub(lambda m: _HUBSPOT_DECODED[m.group(0).upper()], uri)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def hubspot_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def hubspot_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _matches(supplied: str, expected: str) -> bool:
    return hmac.compare_digest(supplied.encode(), expected.encode())


def verify_hubspot(
    *,
    headers: Mapping[str, str],
    method: str,
    uri: str,
    body: bytes,
    secrets: Sequence[str],
    now: datetime,
    tolerance_s: int = 300,
    versions: Sequence[str] = ("v1", "v2", "v3"),
) -> str:
    """Check a HubSpot request; return the signature version that matched.

    v3 is used whenever the request carries it (a bad v3 is refused even if a v1/v2 header
    would match); otherwise ``X-HubSpot-Signature-Version`` says v1 or v2. ``uri`` is the
    full URL HubSpot called (scheme, host, path, query as sent).
    """
    if not secrets:
        raise SignatureInvalid("no HubSpot client secret is configured")
    h = _lower_headers(headers)
    v3 = h.get("x-hubspot-signature-v3")
    if v3 is not None:
        if "v3" not in versions:
            raise SignatureInvalid("HubSpot signature v3 is not accepted here")
        timestamp = h.get("x-hubspot-request-timestamp", "").strip()
        if not timestamp.isdigit():
            raise SignatureInvalid("X-HubSpot-Request-Timestamp is missing or not epoch ms")
        age_ms = now.timestamp() * 1000 - int(timestamp)
        if abs(age_ms) > tolerance_s * 1000:
            direction = "old" if age_ms > 0 else "far in the future"
            raise SignatureInvalid(
                f"X-HubSpot-Request-Timestamp is too {direction} "
                f"({abs(age_ms) / 1000:.0f}s, limit {tolerance_s}s)"
            )
        decoded = decode_hubspot_uri(uri)
        for secret in secrets:
            if _matches(v3.strip(), hubspot_v3(secret, method, decoded, body, timestamp)):
                return "v3"
        raise SignatureInvalid("X-HubSpot-Signature-v3 does not match")

    signature = h.get("x-hubspot-signature")
    if signature is None:
        raise SignatureInvalid("no HubSpot signature (X-HubSpot-Signature-v3 or -Signature)")
    version = h.get("x-hubspot-signature-version", "").strip().lower()
    if version not in ("v1", "v2"):
        raise SignatureInvalid("X-HubSpot-Signature-Version must be v1 or v2")
    if version not in versions:
        raise SignatureInvalid(f"HubSpot signature {version} is not accepted here")
    supplied = signature.strip().lower()
    # v2 signs the URI exactly as called; a proxy may have decoded it, so try both forms.
    uris = dict.fromkeys((uri, decode_hubspot_uri(uri)))
    for secret in secrets:
        if version == "v1":
            if _matches(supplied, hubspot_v1(secret, body)):
                return "v1"
        else:
            for candidate in uris:
                if _matches(supplied, hubspot_v2(secret, method, candidate, body)):
                    return "v2"
    raise SignatureInvalid(f"X-HubSpot-Signature ({version}) does not match")


# --- Standard Webhooks ---------------------------------------------------------------------


def standard_webhooks_key(secret: str) -> bytes:
    """``whsec_<base64>`` -> the key bytes (as the reference library decodes it)."""
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None


def standard_webhooks_sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard_webhook(
    *,
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    now: datetime,
    tolerance_s: int = 300,
) -> str:
    """Check ``webhook-id``/``-timestamp``/``-signature`` (or the ``svix-`` names);
    return the message id, stable across the sender's retries."""
    h = _lower_headers(headers)
    msg_id = h.get("webhook-id") or h.get("svix-id")
    timestamp = h.get("webhook-timestamp") or h.get("svix-timestamp")
    signatures = h.get("webhook-signature") or h.get("svix-signature")
    if not msg_id or not timestamp or not signatures:
        raise SignatureInvalid("webhook-id, webhook-timestamp and webhook-signature are required")
    if not timestamp.strip().isdigit():
        raise SignatureInvalid("webhook-timestamp must be unix seconds")
    ts = int(timestamp.strip())
    age = now.timestamp() - ts
    if abs(age) > tolerance_s:
        direction = "old" if age > 0 else "far in the future"
        raise SignatureInvalid(f"webhook-timestamp is too {direction} (limit {tolerance_s}s)")
    if not keys:
        raise SignatureInvalid("no Standard Webhooks secret is configured")
    expected = [standard_webhooks_sign(key, msg_id, ts, body) for key in keys]
    for candidate in signatures.split(" "):
        if not candidate.startswith("v1,"):
            continue  # v1a (ed25519) and future schemes: not ours
        for wanted in expected:
            if _matches(candidate, wanted):
                return msg_id
    raise SignatureInvalid("no webhook-signature matches")


# --- our Salesforce relay --------------------------------------------------------------------

RELAY_TIMESTAMP = "x-revops-timestamp"
RELAY_SIGNATURE = "x-revops-signature"


def relay_sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_relay(
    *,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    now: datetime,
    tolerance_s: int = 300,
) -> None:
    """The relay that forwards Salesforce change and platform events signs each request
    with a shared secret: ``X-Revops-Timestamp`` (unix seconds) and
    ``X-Revops-Signature: sha256=<hex>``; several ``sha256=`` values may be sent, separated
    by commas, during a rotation."""
    h = _lower_headers(headers)
    timestamp = h.get(RELAY_TIMESTAMP, "").strip()
    supplied = h.get(RELAY_SIGNATURE, "")
    if not timestamp or not supplied:
        raise SignatureInvalid("X-Revops-Timestamp and X-Revops-Signature are required")
    if not timestamp.isdigit():
        raise SignatureInvalid("X-Revops-Timestamp must be unix seconds")
    age = now.timestamp() - int(timestamp)
    if abs(age) > tolerance_s:
        direction = "old" if age > 0 else "far in the future"
        raise SignatureInvalid(f"X-Revops-Timestamp is too {direction} (limit {tolerance_s}s)")
    if not secrets:
        raise SignatureInvalid("no Salesforce events secret is configured")
    expected = [relay_sign(secret, int(timestamp), body) for secret in secrets]
    for candidate in supplied.split(","):
        for wanted in expected:
            if _matches(candidate.strip().lower(), wanted):
                return
    raise SignatureInvalid("X-Revops-Signature does not match")
