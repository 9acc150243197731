"""Signatures: our checks against published test vectors, vectors computed for the sample
bodies in tests/formats, and code we did not write (hubspot-api-client, standardwebhooks)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hubspot.utils.signature import Signature
from standardwebhooks import Webhook

from revops.ingest.domain.errors import SignatureInvalid
from revops.ingest.domain.signatures import (
    decode_hubspot_uri,
    hubspot_v1,
    hubspot_v2,
    hubspot_v3,
    relay_sign,
    standard_webhooks_key,
    standard_webhooks_sign,
    verify_hubspot,
    verify_relay,
    verify_standard_webhook,
)

FORMATS = Path(__file__).parent.parent / "formats"

# --- HubSpot: the SDK's own test vectors ---------------------------------------------------

SDK_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SDK_BODY = b"{'example_field':'example_value'}"
SDK_URI = "https://www.example.com/webhook_uri"
SDK_TS = "1693657560000"


def test_sdk_vectors() -> None:
    assert hubspot_v1(SDK_SECRET, SDK_BODY) == (
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    )
    assert hubspot_v2(SDK_SECRET, "POST", SDK_URI, SDK_BODY) == (
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
    )
    assert hubspot_v2(SDK_SECRET, "GET", SDK_URI, b"") == (
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )
    assert hubspot_v3(SDK_SECRET, "POST", SDK_URI, SDK_BODY, SDK_TS) == (
        "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    )


# --- HubSpot: the sample batch's vectors (computed with hubspot-api-client 12.0.0) ---------

BATCH = (FORMATS / "hubspot_webhook_batch.json").read_bytes()
SECRET = "11111111-2222-3333-4444-555555555555"
URI = "https://ingest.example.com/webhooks/hubspot?tenant=acme"
TS = 1717171725000
AT_TS = datetime.fromtimestamp(TS / 1000, UTC)


def check(
    headers: dict[str, str],
    *,
    body: bytes = BATCH,
    uri: str = URI,
    now: datetime = AT_TS,
    secrets: tuple[str, ...] = (SECRET,),
    versions: tuple[str, ...] = ("v1", "v2", "v3"),
) -> str:
    return verify_hubspot(
        headers=headers,
        method="POST",
        uri=uri,
        body=body,
        secrets=secrets,
        now=now,
        versions=versions,
    )


def v3_headers(signature: str, ts: int = TS) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(ts)}


def test_notes_vectors_accepted() -> None:
    v1 = "abc38093e63f8d42092c742be1b2e827e24025d0a75fa6dfa3d9f594101afd23"
    v2 = "1260a3d1e3b014b31378df23f4444e21311a83507315c778e434887719c6e5c2"
    v3 = "5BhIedPEiy8qAmJGOCRmTDekLxPIlixbdqvyHDADmoA="
    assert check({"X-HubSpot-Signature": v1, "X-HubSpot-Signature-Version": "v1"}) == "v1"
    assert check({"X-HubSpot-Signature": v2, "X-HubSpot-Signature-Version": "v2"}) == "v2"
    assert check(v3_headers(v3)) == "v3"


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_official_sdk_signatures_accepted_and_tampering_refused(version: str) -> None:
    body = BATCH.decode()
    signature = Signature.get_signature(
        client_secret=SECRET,
        request_body=body,
        signature_version=version,
        http_uri=URI,
        http_method="POST",
        timestamp=str(TS),
    )
    if version == "v3":
        headers = v3_headers(signature)
    else:
        headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
    assert check(headers) == version
    # The SDK agrees with itself on what we accepted.
    if version != "v3":
        assert Signature.is_valid(
            signature=signature,
            client_secret=SECRET,
            request_body=body,
            http_uri=URI,
            signature_version=version,
        )

    with pytest.raises(SignatureInvalid):
        check(headers, body=BATCH.replace(b"closedwon", b"closedlost"))
    with pytest.raises(SignatureInvalid):
        check(headers, secrets=("another-secret",))
    tampered = dict(headers)
    key = "X-HubSpot-Signature-v3" if version == "v3" else "X-HubSpot-Signature"
    tampered[key] = ("0" if signature[0] != "0" else "1") + signature[1:]
    with pytest.raises(SignatureInvalid):
        check(tampered)
    if version != "v1":  # v1 does not sign the URI
        with pytest.raises(SignatureInvalid):
            check(headers, uri=URI.replace("acme", "evil"))


def test_v3_timestamp_window_on_both_sides() -> None:
    signature = hubspot_v3(SECRET, "POST", URI, BATCH, str(TS))
    headers = v3_headers(signature)
    five_minutes = timedelta(minutes=5)
    assert check(headers, now=AT_TS + five_minutes) == "v3"
    assert check(headers, now=AT_TS - five_minutes) == "v3"
    with pytest.raises(SignatureInvalid, match="too old"):
        check(headers, now=AT_TS + five_minutes + timedelta(milliseconds=1))
    with pytest.raises(SignatureInvalid, match="future"):
        check(headers, now=AT_TS - five_minutes - timedelta(milliseconds=1))


def test_v3_is_preferred_and_a_bad_v3_is_not_rescued_by_v1() -> None:
    v1 = hubspot_v1(SECRET, BATCH)
    headers = {
        **v3_headers("bm90IGEgc2lnbmF0dXJl"),
        "X-HubSpot-Signature": v1,
        "X-HubSpot-Signature-Version": "v1",
    }
    with pytest.raises(SignatureInvalid, match="v3"):
        check(headers)


def test_missing_or_unknown_signature_refused() -> None:
    with pytest.raises(SignatureInvalid, match="no HubSpot signature"):
        check({})
    with pytest.raises(SignatureInvalid, match="v1 or v2"):
        check({"X-HubSpot-Signature": "x", "X-HubSpot-Signature-Version": "v9"})
    with pytest.raises(SignatureInvalid, match="epoch ms"):
        check({"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "yesterday"})
    v1 = hubspot_v1(SECRET, BATCH)
    with pytest.raises(SignatureInvalid, match="not accepted"):
        check(
            {"X-HubSpot-Signature": v1, "X-HubSpot-Signature-Version": "v1"}, versions=("v2", "v3")
        )


def test_rotation_accepts_any_configured_secret() -> None:
    signature = hubspot_v3("new-secret", "POST", URI, BATCH, str(TS))
    assert check(v3_headers(signature), secrets=("old-secret", "new-secret")) == "v3"


def test_uri_decoded_as_hubspot_specifies() -> None:
    assert decode_hubspot_uri("https://h/p%3Fx?a=b%40c.com&d=%2a%2C%3b%20") == (
        "https://h/p?x?a=b@c.com&d=*,;%20"
    )
    sent_uri = "https://ingest.example.com/webhooks/hubspot?email=jane%40example.com&x=%28y%29"
    signed_uri = "https://ingest.example.com/webhooks/hubspot?email=jane@example.com&x=(y)"
    signature = hubspot_v3(SECRET, "POST", signed_uri, BATCH, str(TS))
    assert check(v3_headers(signature), uri=sent_uri) == "v3"


# --- Standard Webhooks ----------------------------------------------------------------------


def test_standard_webhooks_library_vector() -> None:
    key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = standard_webhooks_sign(
        key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


PRODUCT_BODY = (
    b'{"type":"user.signed_up","timestamp":"2024-05-31T16:08:45Z","data":{"user_id":"usr_123",'
    b'"email":"jane.doe@example.com","plan":"trial"}}'
)
PRODUCT_HEADERS = {
    "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    "webhook-timestamp": "1717171725",
    "webhook-signature": "v1,Ydm1lJeWFAbaJC/moIF/KmS4dex8HEGO640R5EcMsXs=",
}
PRODUCT_KEY = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
PRODUCT_AT = datetime.fromtimestamp(1717171725, UTC)


def verify_product(
    headers: dict[str, str],
    *,
    body: bytes = PRODUCT_BODY,
    now: datetime = PRODUCT_AT,
    keys: tuple[bytes, ...] = (PRODUCT_KEY,),
) -> str:
    return verify_standard_webhook(headers=headers, body=body, keys=keys, now=now)


def test_notes_product_vector_accepted() -> None:
    assert verify_product(PRODUCT_HEADERS) == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def test_standardwebhooks_package_signatures_accepted() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_abc", now, PRODUCT_BODY.decode())
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    assert verify_product(headers, now=now, keys=(standard_webhooks_key(secret),)) == "msg_abc"
    # ...and the package accepts what we sign (the two agree both ways).
    ours = standard_webhooks_sign(
        standard_webhooks_key(secret), "msg_abc", int(now.timestamp()), PRODUCT_BODY
    )
    Webhook(secret).verify(PRODUCT_BODY, {**headers, "webhook-signature": ours})


def test_several_signatures_and_secrets_for_rotation() -> None:
    old = standard_webhooks_key("whsec_" + base64.b64encode(b"o" * 24).decode())
    headers = dict(PRODUCT_HEADERS)
    stale = standard_webhooks_sign(old, headers["webhook-id"], 1717171725, PRODUCT_BODY)
    headers["webhook-signature"] = f"v1a,bm9wZQ== {stale} {PRODUCT_HEADERS['webhook-signature']}"
    assert verify_product(headers) == PRODUCT_HEADERS["webhook-id"]
    assert (
        verify_product({**PRODUCT_HEADERS, "webhook-signature": stale}, keys=(PRODUCT_KEY, old))
        == PRODUCT_HEADERS["webhook-id"]
    )


def test_standard_webhooks_window_on_both_sides() -> None:
    five = timedelta(minutes=5)
    assert verify_product(PRODUCT_HEADERS, now=PRODUCT_AT + five)
    assert verify_product(PRODUCT_HEADERS, now=PRODUCT_AT - five)
    with pytest.raises(SignatureInvalid, match="too old"):
        verify_product(PRODUCT_HEADERS, now=PRODUCT_AT + five + timedelta(seconds=1))
    with pytest.raises(SignatureInvalid, match="future"):
        verify_product(PRODUCT_HEADERS, now=PRODUCT_AT - five - timedelta(seconds=1))


def test_standard_webhooks_refusals() -> None:
    with pytest.raises(SignatureInvalid, match="no webhook-signature matches"):
        verify_product(PRODUCT_HEADERS, body=PRODUCT_BODY.replace(b"usr_123", b"usr_124"))
    with pytest.raises(SignatureInvalid, match="required"):
        verify_product({k: v for k, v in PRODUCT_HEADERS.items() if k != "webhook-id"})
    with pytest.raises(SignatureInvalid):  # the id is signed too
        verify_product({**PRODUCT_HEADERS, "webhook-id": "msg_other"})


# --- the Salesforce relay ------------------------------------------------------------------------


def test_relay_hmac() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    ts = int(now.timestamp())
    body = b'{"data": {}}'
    headers = {"X-Revops-Timestamp": str(ts), "X-Revops-Signature": relay_sign("s", ts, body)}
    verify_relay(headers=headers, body=body, secrets=["s"], now=now)
    verify_relay(headers=headers, body=body, secrets=["old", "s"], now=now + timedelta(minutes=5))
    with pytest.raises(SignatureInvalid, match="too old"):
        verify_relay(
            headers=headers, body=body, secrets=["s"], now=now + timedelta(minutes=5, seconds=1)
        )
    with pytest.raises(SignatureInvalid, match="future"):
        verify_relay(
            headers=headers, body=body, secrets=["s"], now=now - timedelta(minutes=5, seconds=1)
        )
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_relay(headers=headers, body=body + b" ", secrets=["s"], now=now)
    with pytest.raises(SignatureInvalid, match="required"):
        verify_relay(headers={}, body=body, secrets=["s"], now=now)
