"""No lead left waiting: leads nobody could take are routed once someone can, admins
assign or re-route a lead, a high-priority lead left waiting is announced, and a
converted lead is no open SLA breach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from revops.events.catalogue import Event, LeadRoutedEvent, NotificationRequestedEvent
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, fresh_schema, publish, running_app
from revops.router.main import SPEC, build_app

from .conftest import ADMIN, router_settings
from .rep_helpers import create_reps, patch_rep
from .router_events import T0, converted, form, routing_events

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def client(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    # HubSpot write-back on (to a port nobody listens on: the rows stay pending or fail,
    # GET /writebacks?status=all lists them either way).
    settings = router_settings(
        kafka_settings,
        hubspot_access_token=SecretStr("test-token"),
        hubspot_api_base="http://127.0.0.1:9",
    )
    await fresh_schema(SPEC, settings.resolved_database_url())
    async with running_app(build_app(settings), base_url="http://router", headers=ADMIN) as c:
        yield c


async def leads_of(client: httpx.AsyncClient, emails: list[str]) -> list[dict[str, Any]]:
    """The leads of ``emails``, in that order, once all are routed."""

    async def check() -> list[dict[str, Any]]:
        found = []
        for email in emails:
            r = await client.get("/leads", params={"email": email})
            assert r.status_code == 200, r.text
            assert len(r.json()["items"]) == 1, (email, r.json()["items"])
            found.append(r.json()["items"][0])
        return found

    return await eventually(check, timeout_s=30, interval_s=0.1)


async def waiting(client: httpx.AsyncClient, queue: str = "unassigned") -> list[str]:
    r = await client.get("/queues")
    assert r.status_code == 200, r.text
    [listed] = [w for w in r.json()["waiting"] if w["name"] == queue]
    assert listed["count"] == len(listed["lead_ids"])
    return list(listed["lead_ids"])


async def queue_turn(client: httpx.AsyncClient, name: str) -> int:
    r = await client.get("/queues")
    [queue] = [q for q in r.json()["queues"] if q["name"] == name]
    return int(queue["turn"])


async def published(
    kafka_settings: KafkaSettings, check: Any, timeout_s: float = 30
) -> list[Event]:
    """The routing topic once ``check(events)`` passes."""

    async def read() -> list[Event]:
        events = await routing_events(kafka_settings)
        check(events)
        return events

    return await eventually(read, timeout_s=timeout_s, interval_s=0.3)


def routed_of(events: list[Event], lead_id: str) -> list[LeadRoutedEvent]:
    return [e for e in events if isinstance(e, LeadRoutedEvent) and e.payload.lead_id == lead_id]


def notices(events: list[Event], kind: str, subject: str) -> list[NotificationRequestedEvent]:
    return [
        e
        for e in events
        if isinstance(e, NotificationRequestedEvent)
        and e.payload.kind == kind
        and e.payload.subject_id == subject
    ]


async def test_waiting_leads_are_routed_oldest_first_once_a_rep_may_take_them(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    # Nobody in EMEA: the leads wait. Published newest first: the order of their
    # routing later is their creation order, not the order they came in.
    emails = [f"wait{i}@emea{i}.example" for i in range(3)]
    await publish(
        kafka_settings,
        [
            form(email, T0 + timedelta(minutes=i), country="DE", hubspot_id=f"hs-w{i}")
            for i, email in reversed(list(enumerate(emails)))
        ],
    )
    leads = await leads_of(client, emails)
    for lead in leads:
        assert (lead["rule"], lead["owner_id"]) == ("unassigned", None)
        assert lead["reason"] == "Nobody eligible in inbound-EMEA"
        assert lead["region"] == "EMEA"
    ids = [lead["id"] for lead in leads]
    assert set(ids) <= set(await waiting(client))
    turn_before = await queue_turn(client, "inbound-EMEA")

    # A rep who may not take turns yet (paused): applied, and the leads still wait. The
    # routing happens in the transaction that applies the change, so no wait is needed.
    await create_reps(
        client,
        [{"id": "E1", "role": "SDR", "region": "EMEA", "certified": True, "paused": True}],
    )
    assert set(ids) <= set(await waiting(client))

    # Resumed: every waiting lead of EMEA is routed, oldest first, a turn each.
    await patch_rep(client, "E1", paused=False)
    leads = await leads_of(client, emails)
    assert [lead["owner_id"] for lead in leads] == ["E1", "E1", "E1"]
    assert {lead["rule"] for lead in leads} == {"round_robin"}
    assert [lead["turn"] for lead in leads] == [turn_before, turn_before + 1, turn_before + 2]
    assert all("routed once someone could take it" in lead["reason"] for lead in leads)
    assert not set(ids) & set(await waiting(client))
    assert await queue_turn(client, "inbound-EMEA") == turn_before + 3

    # Each lead has a second lead.routed: a new id, the turn, when it was decided.
    def routed_twice(events: list[Event]) -> None:
        for lead_id in ids:
            assert len(routed_of(events, lead_id)) == 2, lead_id

    events = await published(kafka_settings, routed_twice)
    for lead in leads:
        first, second = routed_of(events, lead["id"])
        assert first.id != second.id
        assert (first.payload.rule, first.payload.decided_at) == ("unassigned", None)
        assert (second.payload.rule, second.payload.owner_id) == ("round_robin", "E1")
        assert second.payload.turn == lead["turn"]
        assert second.payload.decided_at is not None

    # The owner is written back to HubSpot, where the leads came from.
    r = await client.get("/writebacks", params={"status": "all"})
    assert set(ids) <= {
        w["lead_id"] for w in r.json()["items"] if w["destination"] == "hubspot_owner"
    }


async def test_a_change_that_lets_nobody_new_take_leads_routes_nothing(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    # APAC has nobody: a lead waits; an AE and an uncertified SDR change nothing.
    email = "alone@apac.example"
    await publish(kafka_settings, [form(email, T0, country="JP")])
    [lead] = await leads_of(client, [email])
    assert lead["rule"] == "unassigned"
    await create_reps(
        client,
        [
            {"id": "P-AE", "role": "AE", "region": "APAC", "certified": True},
            {"id": "P-S", "role": "SDR", "region": "APAC", "certified": False},
        ],
    )
    [lead] = await leads_of(client, [email])
    assert (lead["rule"], lead["owner_id"]) == ("unassigned", None)
    assert lead["id"] in await waiting(client)
    # Certified: now the lead goes to P-S.
    await patch_rep(client, "P-S", certified=True)
    [lead] = await leads_of(client, [email])
    assert (lead["rule"], lead["owner_id"]) == ("round_robin", "P-S")


async def test_a_high_priority_lead_left_waiting_is_announced(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    demo = "demo@nowhere.example"
    consultant = "consultant@advisors.example"
    await publish(
        kafka_settings,
        [
            form(demo, T0, country="Atlantis", form_type="demo_request"),
            form(consultant, T0, country="US", form_type="contact", consultant=True),
            form("ebook@nowhere.example", T0, country="Atlantis"),
        ],
    )
    lead, review, normal = await leads_of(client, [demo, consultant, "ebook@nowhere.example"])
    assert (lead["rule"], lead["priority"]) == ("unassigned", "high")
    assert (review["rule"], review["priority"]) == ("manual_review", "high")

    def announced(events: list[Event]) -> None:
        assert notices(events, "high_priority_lead_waiting", lead["id"])
        assert notices(events, "high_priority_lead_waiting", review["id"])
        assert routed_of(events, normal["id"])

    events = await published(kafka_settings, announced)
    # No WAITING_LEAD_RECIPIENTS: addressed to the queue the lead waits in.
    [notice] = notices(events, "high_priority_lead_waiting", lead["id"])
    assert notice.payload.recipients == ["unassigned"]
    assert demo in notice.payload.message
    [notice] = notices(events, "high_priority_lead_waiting", review["id"])
    assert notice.payload.recipients == ["manual_review"]
    # A normal-priority lead waiting is not announced.
    assert not notices(events, "high_priority_lead_waiting", normal["id"])


async def test_admins_assign_a_lead_by_hand(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    email = "byhand@nowhere.example"
    await publish(
        kafka_settings,
        [form(email, T0, country="Atlantis", form_type="demo", hubspot_id="hs-hand")],
    )
    [lead] = await leads_of(client, [email])
    assert lead["rule"] == "unassigned"
    await create_reps(
        client,
        [
            {"id": "M1", "role": "SDR", "region": "AMER", "certified": True},
            {"id": "M-GONE", "role": "SDR", "region": "AMER", "active": False},
        ],
    )

    r = await client.post("/leads/no-such-lead/assign", json={"owner_id": "M1", "reason": "x"})
    assert r.status_code == 404, r.text
    r = await client.post(f"/leads/{lead['id']}/assign", json={"owner_id": "NOBODY", "reason": "x"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "owner_id"]
    r = await client.post(f"/leads/{lead['id']}/assign", json={"owner_id": "M-GONE", "reason": "x"})
    assert r.status_code == 422, r.text
    assert "not active" in r.json()["detail"][0]["msg"]
    r = await client.post(f"/leads/{lead['id']}/assign", json={"owner_id": "M1"})
    assert r.status_code == 422, r.text  # a reason is required
    # The read-only token may not.
    r = await client.post(
        f"/leads/{lead['id']}/assign",
        json={"owner_id": "M1", "reason": "x"},
        headers={"Authorization": "Bearer dev-read-token"},
    )
    assert r.status_code == 403, r.text
    assert (await leads_of(client, [email]))[0]["owner_id"] is None

    turn_before = await queue_turn(client, "inbound-AMER")
    # By its HubSpot id, as GET /leads/{id} takes it.
    r = await client.post(
        "/leads/hs-hand/assign", json={"owner_id": "M1", "reason": "knows the prospect"}
    )
    assert r.status_code == 200, r.text
    now = r.json()
    assert (now["id"], now["owner_id"], now["owner_role"]) == (lead["id"], "M1", "SDR")
    assert (now["rule"], now["reason"], now["queue"], now["turn"]) == (
        "manual",
        "knows the prospect",
        None,
        None,
    )
    assert now["id"] not in await waiting(client)
    assert await queue_turn(client, "inbound-AMER") == turn_before  # no turn used

    def journaled(events: list[Event]) -> None:
        assert [e.payload.rule for e in routed_of(events, lead["id"])] == ["unassigned", "manual"]
        assert notices(events, "high_priority_lead", lead["id"])

    events = await published(kafka_settings, journaled)
    manual = routed_of(events, lead["id"])[1]
    assert (manual.payload.owner_id, manual.payload.decided_at is not None) == ("M1", True)
    [notice] = notices(events, "high_priority_lead", lead["id"])
    assert notice.payload.recipients == ["M1"]
    r = await client.get("/writebacks", params={"status": "all"})
    assert lead["id"] in {w["lead_id"] for w in r.json()["items"]}

    # Re-routed: through the rules again, as of now: the AMER rotation is M1's alone.
    lead_row = await leads_of(client, [email])
    r = await client.post(f"/leads/{lead['id']}/reroute")
    assert r.status_code == 200, r.text
    # Its country says no region: the rules leave it waiting again, and say so.
    assert (r.json()["rule"], r.json()["owner_id"]) == ("unassigned", None)
    assert lead_row[0]["rule"] == "manual"
    r = await client.post("/leads/no-such-lead/reroute")
    assert r.status_code == 404, r.text


async def test_reroute_takes_a_turn_and_converted_leads_are_refused(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    email = "again@amer.example"
    await publish(kafka_settings, [form(email, T0, country="US")])
    [lead] = await leads_of(client, [email])
    await create_reps(client, [{"id": "M2", "role": "SDR", "region": "AMER", "certified": True}])
    r = await client.post(f"/leads/{lead['id']}/assign", json={"owner_id": "M2", "reason": "x"})
    assert r.status_code == 200, r.text
    turn_before = await queue_turn(client, "inbound-AMER")
    r = await client.post(f"/leads/{lead['id']}/reroute")
    assert r.status_code == 200, r.text
    again = r.json()
    # The rotation's next turn that M2 may take (M-GONE, inactive, is passed over).
    assert (again["rule"], again["owner_id"]) == ("round_robin", "M2")
    assert again["turn"] >= turn_before
    assert "re-routed by an admin" in again["reason"]
    assert await queue_turn(client, "inbound-AMER") == again["turn"] + 1

    def three(events: list[Event]) -> None:
        assert [e.payload.rule for e in routed_of(events, lead["id"])] == [
            "round_robin",
            "manual",
            "round_robin",
        ]

    events = await published(kafka_settings, three)
    assert len({e.id for e in routed_of(events, lead["id"])}) == 3

    await publish(
        kafka_settings, [converted("00Qconv", email, "001conv", "006conv", T0 + timedelta(days=1))]
    )

    async def is_converted() -> None:
        r = await client.get(f"/leads/{lead['id']}")
        assert r.json()["converted_at"] is not None

    await eventually(is_converted, timeout_s=30, interval_s=0.1)
    r = await client.post(f"/leads/{lead['id']}/reroute")
    assert r.status_code == 409, r.text
    r = await client.post(f"/leads/{lead['id']}/assign", json={"owner_id": "M2", "reason": "x"})
    assert r.status_code == 409, r.text


async def test_a_lead_converted_without_a_touch_is_no_open_first_touch_breach(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    start = T0 + timedelta(days=60)
    on_time, late = "conv5m@sla.example", "conv5m1s@sla.example"
    await publish(
        kafka_settings,
        [form(on_time, start, country="US"), form(late, start, country="US")],
    )
    first, second = await leads_of(client, [on_time, late])
    await publish(
        kafka_settings,
        [
            converted("00Q-ot", on_time, "001-ot", "006-ot", start + timedelta(minutes=5)),
            converted("00Q-l", late, "001-l", "006-l", start + timedelta(minutes=5, seconds=1)),
        ],
    )

    async def both_converted() -> None:
        for lead in (first, second):
            r = await client.get(f"/leads/{lead['id']}")
            assert r.json()["converted_at"] is not None

    await eventually(both_converted, timeout_s=30, interval_s=0.1)
    r = await client.get(
        "/sla/breaches",
        params={"as_of": (start + timedelta(days=5)).isoformat(), "since": start.isoformat()},
    )
    assert r.status_code == 200, r.text
    found = {(b["lead_id"], b["kind"]): b for b in r.json()["items"]}
    # Converted at 5:00: nothing breached (the status clock stopped too).
    assert not [k for k in found if k[0] == first["id"]]
    # Converted at 5:01 without a touch: a closed first-touch breach of 301 s.
    breach = found[(second["id"], "first_touch")]
    assert (breach["open"], breach["took_s"]) == (False, 301.0)
    assert (second["id"], "first_status_change") not in found
    # As of 4 minutes after the forms, before either conversion: nothing is due yet.
    r = await client.get(
        "/sla/breaches",
        params={
            "as_of": (start + timedelta(minutes=4)).isoformat(),
            "since": start.isoformat(),
        },
    )
    assert [b for b in r.json()["items"] if b["lead_id"] in (first["id"], second["id"])] == []
