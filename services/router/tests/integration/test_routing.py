"""Events in through real Kafka, rows in real Postgres, answers out of the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from revops.events import topics
from revops.events.catalogue import (
    Event,
    NotificationRequestedEvent,
    PersonChanged,
    PersonChangedEvent,
    SignupCreated,
    SignupCreatedEvent,
    SourceRef,
    make_event,
)
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish, read_events

from .rep_helpers import create_reps, wait_for_rep
from .router_events import (
    T0,
    account,
    converted,
    form,
    lead_status,
    opportunity,
    routing_events,
    sf,
    touch,
)

pytestmark = pytest.mark.infra

REPS = [
    {"id": "005A", "name": "Ann", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "005B", "name": "Bob", "role": "SDR", "region": "AMER", "certified": True},
    {"id": "005C", "name": "Cat", "role": "SDR", "region": "EMEA", "certified": True},
    {
        "id": "005X",
        "name": "Xena",
        "role": "AE",
        "region": "AMER",
        "certified": True,
        "paired_sdr_id": "005A",
    },
    {
        "id": "005Y",
        "name": "Yves",
        "role": "AE",
        "region": "AMER",
        "certified": True,
        "paired_sdr_id": "005B",
    },
]


async def lead_of(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        r = await client.get("/leads", params={"email": email})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 1, r.json()["items"]
        lead: dict[str, Any] = r.json()["items"][0]
        return lead

    return await eventually(check)


async def test_reps_api_creates_lists_and_validates(client: httpx.AsyncClient):
    # The reps are applied from the roster topic: the later tests route with them.
    await create_reps(client, REPS)
    r = await client.post("/reps", json=REPS[0])
    assert r.status_code == 409
    r = await client.post("/reps", json={"id": "005Z", "role": "SDR", "region": "MARS"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "region"]
    r = await client.post("/reps", json={"id": "005Z", "role": "SDR", "weight": -1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "weight"]
    r = await client.patch("/reps/005A", json={"daily_cap": "lots"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "daily_cap"]
    r = await client.patch("/reps/005A", json={"paused": True})
    assert r.status_code == 200 and r.json()["paused"] is True
    await wait_for_rep(client, "005A", paused=True)
    r = await client.patch("/reps/005A", json={"paused": False})
    assert r.json()["paused"] is False
    await wait_for_rep(client, "005A", paused=False)
    r = await client.patch("/reps/nobody", json={"paused": True})
    assert r.status_code == 404
    r = await client.get("/reps")
    assert [x["id"] for x in r.json()["items"]] == [x["id"] for x in REPS]
    r = await client.get("/reps", headers={"Authorization": "Bearer dev-read-token"})
    assert r.status_code == 200
    r = await client.post(
        "/reps", json={"id": "9", "role": "SDR"}, headers={"Authorization": "Bearer dev-read-token"}
    )
    assert r.status_code == 403
    r = await client.get("/reps", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_rules_of_engagement_end_to_end(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
):
    await publish(
        kafka_settings,
        [
            account("001ACME", "Acme", ["acme.com"], T0 - timedelta(days=60), owner="005X"),
            account("001INIT", "Initech", ["initech.com"], T0 - timedelta(days=60), owner="005Y"),
            account("001GLOB", "Globex", ["globex.com"], T0 - timedelta(days=60), owner="005Y"),
            touch("005B", T0 - timedelta(days=30), account_id="001ACME"),
            touch("005A", T0 - timedelta(days=31), account_id="001GLOB"),
            opportunity("006I", "001INIT", "005Y", T0 - timedelta(days=5)),
        ],
    )
    # No pause: the accounts, touches and opportunity were acknowledged before the forms
    # were sent, so the router applies them before it routes the forms (causal order).
    await publish(
        kafka_settings,
        [
            form("jane@eu.acme.com", T0, form_type="demo_request", hubspot_id="hs-1"),
            form("joe@initech.com", T0),
            form("gail@globex.com", T0),
            form("con@gmail.com", T0, consultant=True),
            form("nobody@example.org", T0, country="Narnia"),
        ],
    )
    jane = await lead_of(client, "jane@eu.acme.com")
    assert (jane["rule"], jane["owner_id"], jane["match"], jane["account_id"]) == (
        "recent_touch",
        "005B",
        "parent_domain",
        "001ACME",
    )
    assert jane["reason"] == "SDR 005B touched account Acme on 2026-01-31"
    assert jane["priority"] == "high"
    joe = await lead_of(client, "joe@initech.com")
    assert (joe["rule"], joe["owner_id"], joe["owner_role"], joe["review_with_sdr_id"]) == (
        "open_opportunity",
        "005Y",
        "AE",
        "005B",
    )
    gail = await lead_of(client, "gail@globex.com")
    assert (gail["rule"], gail["queue"]) == ("round_robin", "inbound-AMER")
    assert gail["owner_id"] in {"005A", "005B"}
    con = await lead_of(client, "con@gmail.com")
    assert (con["rule"], con["queue"], con["match"]) == (
        "manual_review",
        "manual_review",
        "none_free_mail",
    )
    lost = await lead_of(client, "nobody@example.org")
    assert (lost["rule"], lost["queue"], lost["owner_id"]) == ("unassigned", "unassigned", None)

    # A second form from the same email is a touchpoint: still one lead, same owner.
    await publish(kafka_settings, [form("jane@eu.acme.com", T0 + timedelta(hours=1))])
    r = await client.get("/queues")
    assert r.status_code == 200
    waiting = {w["name"]: w for w in r.json()["waiting"]}
    assert lost["id"] in waiting["unassigned"]["lead_ids"]
    assert con["id"] in waiting["manual_review"]["lead_ids"]
    r = await client.get(f"/leads/{jane['id']}")
    assert r.json()["owner_id"] == "005B"
    r = await client.get("/leads/hs-1")
    assert r.json()["id"] == jane["id"]
    assert (await client.get("/leads/nope")).status_code == 404

    routed = await read_events(kafka_settings, topics.ROUTING.name(kafka_settings.topic_prefix), 7)
    kinds = sorted(e.type + ":" + getattr(e.payload, "kind", "") for e in routed)
    assert kinds.count("lead.routed:") == 5
    assert "notification.requested:high_priority_lead" in kinds
    assert "notification.requested:open_opportunity_review" in kinds


async def test_sla_times_and_breaches(client: httpx.AsyncClient, kafka_settings: KafkaSettings):
    t = T0 + timedelta(days=1)
    await publish(
        kafka_settings,
        [
            form("fast@acme.com", t),
            form("slow@acme.com", t),
            form("hub@acme.com", t, hubspot_id="hs-77"),
        ],
    )
    fast = await lead_of(client, "fast@acme.com")
    slow = await lead_of(client, "slow@acme.com")
    hub = await lead_of(client, "hub@acme.com")
    # HubSpot's lead status on the contact counts as the lead's first status change.
    hubspot_status = make_event(
        PersonChangedEvent,
        id="hs-status-77",
        source="hubspot",
        occurred_at=t + timedelta(hours=2),
        payload=PersonChanged(
            person_type="contact",
            change="updated",
            status="IN_PROGRESS",
            source_ref=SourceRef(system="hubspot", object_type="contact", object_id="hs-77"),
        ),
    )
    await publish(kafka_settings, [hubspot_status])

    async def hub_status():
        r = await client.get(f"/leads/{hub['id']}")
        body = r.json()
        assert body["status"] == "IN_PROGRESS", body
        assert body["first_status_change_at"].startswith("2026-03-03T11:00")

    await eventually(hub_status)
    await publish(
        kafka_settings,
        [
            touch("005B", t + timedelta(minutes=5), email="fast@acme.com"),
            touch("005B", t + timedelta(minutes=6), email="slow@acme.com"),
            lead_status("fast@acme.com", "00QF", "Working", t + timedelta(hours=24)),
            lead_status("slow@acme.com", "00QS", "Working", t + timedelta(hours=24, minutes=1)),
        ],
    )

    async def check():
        r = await client.get("/sla/breaches", params={"as_of": (t + timedelta(days=2)).isoformat()})
        assert r.status_code == 200, r.text
        got = {(b["lead_id"], b["kind"]) for b in r.json()["items"]}
        assert (slow["id"], "first_touch") in got
        assert (slow["id"], "first_status_change") in got
        assert not any(lead == fast["id"] for lead, _ in got)
        return r.json()["items"]

    await eventually(check)
    r = await client.get(f"/leads/{fast['id']}")
    body = r.json()
    assert body["first_touch_at"].startswith("2026-03-03T09:05")
    assert body["first_status_change_at"].startswith("2026-03-04T09:00")


async def test_transfer_moves_leads_notifies_and_credits(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
):
    t = T0 + timedelta(days=3)
    await publish(
        kafka_settings,
        [
            account("001MOVE", "Movers", ["movers.com"], t - timedelta(days=10), owner="005X"),
        ],
    )
    await publish(kafka_settings, [form("a@movers.com", t), form("b@movers.com", t)])
    a = await lead_of(client, "a@movers.com")
    b = await lead_of(client, "b@movers.com")
    # 005X (pair 005A) -> 005Y (pair 005B): both SDRs told, leads move to 005B.
    await publish(
        kafka_settings,
        [
            account("001MOVE", "Movers", ["movers.com"], t + timedelta(days=1), owner="005Y"),
        ],
    )

    async def moved():
        for lead in (a, b):
            r = await client.get(f"/leads/{lead['id']}")
            assert r.json()["owner_id"] == "005B", r.json()

    await eventually(moved)
    await publish(
        kafka_settings,
        [
            converted("00QA", "a@movers.com", "001MOVE", "006A", t + timedelta(days=15)),
            converted("00QB", "b@movers.com", "001MOVE", "006B", t + timedelta(days=16)),
        ],
    )

    async def credited():
        ra = await client.get(f"/leads/{a['id']}/conversion")
        rb = await client.get(f"/leads/{b['id']}/conversion")
        assert ra.status_code == 200 and rb.status_code == 200
        return ra.json(), rb.json()

    ca, cb = await eventually(credited)
    # Moved on day 1; converted 14 days later -> the previous SDR, 15 days -> the new one.
    assert ca["sao_sdr_id"] == "005A"
    assert cb["sao_sdr_id"] == "005B"
    assert ca["ae_id"] in {"005X", "005Y"} and ca["rule"] == "round_robin"
    transfers = [
        e
        for e in await _all_routing(kafka_settings)
        if isinstance(e, NotificationRequestedEvent) and e.payload.kind == "account_transfer"
    ]
    assert len(transfers) == 1
    assert transfers[0].payload.recipients == ["005A", "005B"]
    assert transfers[0].payload.subject_id == "001MOVE"


async def _all_routing(kafka_settings: KafkaSettings) -> list[Event]:
    async def enough():
        events = await routing_events(kafka_settings)
        assert any(getattr(e.payload, "kind", None) == "account_transfer" for e in events)
        return events

    return await eventually(enough)


async def test_signups_rep_created_leads_and_assign_ae_by_pair(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
):
    t = T0 + timedelta(days=40)
    signup = make_event(
        SignupCreatedEvent,
        id="signup-1",
        source="product",
        occurred_at=t,
        payload=SignupCreated(
            user_id="u1", email="dev@pairco.com", signup_type="cloud", country="CA"
        ),
    )
    outbound = make_event(
        PersonChangedEvent,
        id="sf-created-1",
        source="salesforce",
        occurred_at=t,
        payload=PersonChanged(
            person_type="lead",
            change="created",
            email="cto@bigcorp.com",
            status="New",
            country="US",
            created_by_id="005A",
            source_ref=sf("Lead", "00QOUT"),
            created_at=t,
        ),
    )
    await publish(
        kafka_settings,
        [
            account("001PAIR", "PairCo", ["pairco.com"], t - timedelta(days=100), owner="005Y"),
        ],
    )
    await publish(
        kafka_settings,
        [
            signup,
            outbound,
            touch("005B", t - timedelta(days=3), account_id="001PAIR"),  # 005B is 005Y's pair
        ],
    )
    dev = await lead_of(client, "dev@pairco.com")
    assert dev["match"] == "exact_domain" and dev["account_id"] == "001PAIR"
    cto = await lead_of(client, "cto@bigcorp.com")
    assert (cto["rule"], cto["owner_id"], cto["salesforce_id"]) == (
        "recent_touch",
        "005A",
        "00QOUT",
    )
    assert cto["reason"] == "SDR 005A touched this lead on 2026-04-11"
    await publish(
        kafka_settings,
        [
            converted("00QDEV", "dev@pairco.com", "001PAIR", "006P", t + timedelta(days=1)),
        ],
    )

    async def assigned():
        r = await client.get(f"/leads/{dev['id']}/conversion")
        assert r.status_code == 200
        return r.json()

    conversion = await eventually(assigned)
    assert (conversion["rule"], conversion["ae_id"]) == ("pair_touch", "005Y")
    assert "SDR 005B" in conversion["reason"]
