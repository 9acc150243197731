"""Property tests: whatever arrives, correctly signed or not, never causes a 500 -- the
answer is a clear 2xx/4xx, through the real ASGI app (Kafka replaced by a fake), and the
pure parsers raise only their own errors."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revops.events.testing import examples
from revops.ingest.domain import forms, hubspot, product, salesforce
from revops.ingest.domain.errors import IngestError
from revops.ingest.main import build_app

from ..conftest import BASE, FORMATS, FakeProducer, Signer, unit_settings

ANSWERS = {200, 400, 401, 403, 413, 415, 422}
SEEN: Counter[tuple[str, int]] = Counter()
NOW = datetime(2024, 6, 1, tzinfo=UTC)
PRODUCER = FakeProducer()
APP = build_app(unit_settings(max_body_bytes=20_000))
APP.state.producer = PRODUCER
SAMPLE_XML = (FORMATS / "sfdc_outbound_message_opportunity.xml").read_bytes()
SAMPLE_BATCH = json.loads((FORMATS / "hubspot_webhook_batch.json").read_text())
SAMPLE_CDC = json.loads((FORMATS / "sfdc_cdc_opportunity.json").read_text())

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "1717171700123",
            "2024-05-31T16:08:20Z",
            "jane@example.com",
            "true",
            "0015g00000AbCdEAAV",
            "12.5",
            "closedwon",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)

NOTIFICATION_KEYS = sorted(
    {k for n in SAMPLE_BATCH for k in n}
    | {
        "propertyName",
        "propertyValue",
        "mergedObjectIds",
        "primaryObjectId",
        "newObjectId",
        "associationType",
        "fromObjectId",
        "toObjectId",
        "associationRemoved",
        "eventType",
    }
)
SUBSCRIPTIONS = st.sampled_from([*hubspot.SUPPORTED_TYPES, "ticket.creation", "x", ""])


@st.composite
def notifications(draw: st.DrawFn) -> dict[str, Any]:
    """A sample notification with some fields replaced by anything."""
    base = dict(draw(st.sampled_from(SAMPLE_BATCH)))
    base["subscriptionType"] = draw(SUBSCRIPTIONS)
    changes = draw(st.dictionaries(st.sampled_from(NOTIFICATION_KEYS), json_values, max_size=4))
    base.update(changes)
    for key in draw(st.lists(st.sampled_from(NOTIFICATION_KEYS), max_size=2)):
        base.pop(key, None)
    return base


@st.composite
def cometd_messages(draw: st.DrawFn) -> Any:
    message = json.loads(json.dumps(draw(st.sampled_from(SAMPLE_CDC))))
    payload = message["data"]["payload"]
    header = payload["ChangeEventHeader"]
    header["entityName"] = draw(st.sampled_from((*salesforce.OBJECT_TYPES, "Case", "")))
    header["changeType"] = draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "GAP_CREATE", 1]))
    header.update(draw(st.dictionaries(st.sampled_from(sorted(header)), json_values, max_size=2)))
    keys = [
        "Email",
        "IsConverted",
        "ConvertedAccountId",
        "Website",
        "Amount",
        "CloseDate",
        "CreatedDate",
        "ActivityDate",
        "Id",
        "LastModifiedDate",
    ]
    payload.update(draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=4)))
    return message


def xml_mutations() -> st.SearchStrategy[bytes]:
    fragments = st.sampled_from(
        [
            b"<",
            b">",
            b"&",
            b"&amp;",
            b"<!DOCTYPE x>",
            b'<sf:Amount xsi:nil="true"/>',
            b"<sf:CloseDate>junk</sf:CloseDate>",
            b'xsi:type="sf:Lead"',
            b"<Notification>",
            b"</Notification>",
            b"\x00",
            b"\xff",
            b"]]>",
            b"<![CDATA[x]]>",
            b"<sf:Email>nope</sf:Email>",
            b"<sf:Website>www.a.io</sf:Website>",
        ]
    )

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        body = SAMPLE_XML.replace(b"00D5g000004ExAmEAK", b"00D000000000001AAA")
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(body)))
            cut = draw(st.integers(0, 20))
            body = body[:at] + draw(fragments) + body[at + cut :]
        return body

    return mutate()


async def post(path: str, body: bytes, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url=BASE) as c:
        response = await c.post(path, content=body, headers=headers)
    assert response.status_code in ANSWERS, (response.status_code, response.text)
    SEEN[(path.split("?")[0], response.status_code)] += 1
    if response.status_code >= 400 and "xml" not in response.headers["content-type"]:
        assert response.json()["detail"]
    return response.status_code


FAST = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FAST
@given(body=st.binary(max_size=3000))
async def test_arbitrary_bytes_never_500(body: bytes) -> None:
    await post("/webhooks/hubspot", body, Signer.hubspot(body, f"{BASE}/webhooks/hubspot"))
    await post(
        "/webhooks/hubspot/forms", body, Signer.hubspot(body, f"{BASE}/webhooks/hubspot/forms")
    )
    await post("/webhooks/salesforce/outbound", body, Signer.soap())
    await post("/webhooks/salesforce/events", body, Signer.relay(body))
    await post("/webhooks/product/signups", body, Signer.product(body))


@FAST
@given(value=json_values)
async def test_arbitrary_json_never_500(value: Any) -> None:
    body = json.dumps(value).encode()
    await post("/webhooks/hubspot", body, Signer.hubspot(body, f"{BASE}/webhooks/hubspot"))
    await post(
        "/webhooks/hubspot/forms", body, Signer.hubspot(body, f"{BASE}/webhooks/hubspot/forms")
    )
    await post("/webhooks/salesforce/events", body, Signer.relay(body))
    await post("/webhooks/product/signups", body, Signer.product(body))


@FAST
@given(batch=st.lists(notifications(), min_size=1, max_size=5))
async def test_near_valid_hubspot_batches_never_500(batch: list[dict[str, Any]]) -> None:
    body = json.dumps(batch).encode()
    await post("/webhooks/hubspot", body, Signer.hubspot(body, f"{BASE}/webhooks/hubspot"))


@FAST
@given(
    fields=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(
                    ["email", "firstname", "is_consultant", "utm_campaign", "country", "x"]
                ),
                "value": json_values,
            }
        ),
        max_size=5,
    ),
    context=st.dictionaries(
        st.sampled_from(["pageUri", "referrer", "sfdcCampaignId", "hutk"]), json_values, max_size=3
    ),
    submitted=json_values,
)
async def test_near_valid_forms_never_500(fields: list[Any], context: Any, submitted: Any) -> None:
    # The email first: a valid one most of the time, so the other fields get checked too.
    fields = [{"name": "email", "value": "jane@example.com"}, *fields]
    body = json.dumps({"fields": fields, "context": context, "submittedAt": submitted}).encode()
    path = "/webhooks/hubspot/forms?form_type=ebook"
    await post(path, body, Signer.hubspot(body, BASE + path))


@FAST
@given(messages=st.lists(cometd_messages(), min_size=1, max_size=3))
async def test_near_valid_change_events_never_500(messages: list[Any]) -> None:
    body = json.dumps(messages).encode()
    await post("/webhooks/salesforce/events", body, Signer.relay(body))


@FAST
@given(body=xml_mutations())
async def test_mutated_outbound_messages_never_500(body: bytes) -> None:
    await post("/webhooks/salesforce/outbound", body, Signer.soap())


@FAST
@given(
    data=st.dictionaries(
        st.sampled_from(["user_id", "email", "signup_type", "country", "first_source_url"]),
        json_values,
    ),
    timestamp=json_values,
)
async def test_near_valid_signups_never_500(data: Any, timestamp: Any) -> None:
    body = json.dumps({"type": "user.signed_up", "timestamp": timestamp, "data": data}).encode()
    await post("/webhooks/product/signups", body, Signer.product(body))


@settings(max_examples=examples(300), deadline=None)
@given(value=json_values)
def test_pure_parsers_raise_only_their_own_errors(value: Any) -> None:
    raw = json.dumps(value).encode()
    calls: list[Callable[[], object]] = [
        lambda: hubspot.parse_batch(value, received_at=NOW),
        lambda: hubspot.parse_batch([value], received_at=NOW),
        lambda: forms.parse_submission(value, forms.FormRules(), raw_body=raw, received_at=NOW),
        lambda: salesforce.parse_stream_events(
            value, custom=salesforce.CustomFields(), received_at=NOW
        ),
        lambda: product.parse_signup(value, webhook_id="m", received_at=NOW),
    ]
    for call in calls:
        with contextlib.suppress(IngestError):
            call()


def test_the_near_valid_strategies_reach_acceptance() -> None:
    """Guards the tests above (run before it, in file order): their bodies are not all
    refused at the first check, so the parsers behind it were exercised."""
    for path in (
        "/webhooks/hubspot",
        "/webhooks/salesforce/outbound",
        "/webhooks/salesforce/events",
        "/webhooks/hubspot/forms",
    ):
        assert SEEN[(path, 200)] > 0, (path, SEEN)
    for path in (
        "/webhooks/hubspot",
        "/webhooks/salesforce/events",
        "/webhooks/hubspot/forms",
        "/webhooks/product/signups",
    ):
        assert SEEN[(path, 422)] > 0, (path, SEEN)
