"""Events in through Kafka, rows and API answers out: stage history, renewals on Closed
Won (once, whatever the delivery), cancellation, chains, tiers."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from revops.events import topics
from revops.events.codec import decode_event
from revops.events.testing import eventually
from revops.renewals.domain.renewals import renewal_id_for

from .conftest import publish
from .renewals_events import account, opportunity

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def renewal_events(kafka_settings: Any, renewal_id: str, wait_s: float = 3) -> list[Any]:
    """Every renewal.created event for the renewal now on the topic."""
    consumer = AIOKafkaConsumer(
        topics.RENEWALS.name(kafka_settings.topic_prefix),
        bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    event = decode_event(record.value)
                    if event.type == "renewal.created" and event.payload.renewal_id == renewal_id:
                        found.append(event)
    finally:
        await consumer.stop()
    return found


async def get_json(client: Any, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()


async def test_closed_won_twice_and_out_of_order_makes_one_renewal(client, kafka_settings, unique):
    opp = unique("006A")
    events = [
        opportunity(
            unique("e1"),
            day(0),
            opp,
            stage="1 - Interest",
            amount="12000",
            owner_id="005AE",
            change="created",
            opportunity_type="New Business",
            name="Acme platform",
        ),
        opportunity(unique("e2"), day(3), opp, stage="Stage 2 - Qualified"),
        opportunity(unique("e3"), day(20), opp, stage="Closed Won", close_date=date(2026, 3, 22)),
        # the same win from another channel (CDC and an outbound message): another id
        opportunity(unique("e3b"), day(20.001), opp, stage="Closed Won"),
    ]
    # Delivered: the wins first, then the older stages, then a win redelivered.
    await publish(kafka_settings, [events[2], events[3], events[0], events[1], events[2]])

    async def renewal() -> Any:
        doc = await get_json(client, f"/opportunities/{opp}/renewal")
        assert doc["status"] == "open"
        return doc

    doc = await eventually(renewal)
    assert doc["id"] == renewal_id_for(opp)
    assert doc["source_opportunity_id"] == opp
    assert (doc["account_id"], doc["owner_id"]) == ("001ACME", "005AE")
    assert doc["close_date"] == "2027-03-22"
    assert float(doc["amount"]) == 12000

    async def history() -> Any:
        detail = await get_json(client, f"/opportunities/{opp}")
        assert [h["stage"] for h in detail["history"]] == [
            "1 - Interest",
            "Stage 2 - Qualified",
            "Closed Won",
        ]
        return detail

    detail = await eventually(history)
    assert detail["stage"] == "Closed Won" and detail["status"] == "won"
    assert detail["nbm_at"].startswith("2026-03-02T17:00")
    assert detail["qualified_at"].startswith("2026-03-05T17:00")
    assert detail["cycle_time_days"] == 17

    listed = await get_json(client, "/renewals?owner_id=005AE&due_before=2027-03-23")
    assert [r["id"] for r in listed["items"]].count(doc["id"]) == 1
    assert len(await renewal_events(kafka_settings, doc["id"])) == 1


async def test_leaving_closed_won_cancels_and_winning_again_reinstates(
    client, kafka_settings, unique
):
    opp = unique("006B")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"),
                day(0),
                opp,
                stage="2 - Qualified",
                amount="5000",
                change="created",
                owner_id="005AE",
            ),
            opportunity(
                unique("e2"), day(5), opp, stage="Closed Won", close_date=date(2026, 1, 31)
            ),
        ],
    )

    async def status(expected: str) -> Any:
        doc = await get_json(client, f"/opportunities/{opp}/renewal")
        assert doc["status"] == expected
        return doc

    first = await eventually(lambda: status("open"))
    assert first["close_date"] == "2027-01-31"
    await publish(kafka_settings, [opportunity(unique("e3"), day(6), opp, stage="3 - Proposal")])
    cancelled = await eventually(lambda: status("cancelled"))
    assert cancelled["ended_at"].startswith("2026-03-08T17:00")
    listed = await get_json(client, "/renewals?owner_id=005AE")
    assert cancelled["id"] not in [r["id"] for r in listed["items"]]

    await publish(kafka_settings, [opportunity(unique("e4"), day(7), opp, stage="Closed Won")])
    again = await eventually(lambda: status("open"))
    assert again["id"] == first["id"]


async def test_renewals_due_as_of_a_moment_follow_the_stage_history(client, kafka_settings, unique):
    """Won on day 5, moved back out on day 6 (cancelled), won again on day 7 (reinstated):
    the renewal is due as of each moment the opportunity stood won then, whatever its
    status now."""
    opp, owner = unique("006H"), unique("005HIST")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"),
                day(0),
                opp,
                stage="2 - Qualified",
                amount="800",
                change="created",
                owner_id=owner,
                contract_end_date=date(2026, 5, 15),  # due in the quarter after March
            ),
            opportunity(unique("e2"), day(5), opp, stage="Closed Won"),
            opportunity(unique("e3"), day(6), opp, stage="3 - Proposal"),
            opportunity(unique("e4"), day(7), opp, stage="Closed Won"),
        ],
    )

    async def reinstated() -> None:
        detail = await get_json(client, f"/opportunities/{opp}")
        assert len(detail["history"]) == 4
        assert (await get_json(client, f"/opportunities/{opp}/renewal"))["status"] == "open"

    await eventually(reinstated)

    async def due(moment: datetime) -> int:
        response = await client.get("/pipeline", params={"as_of": moment.isoformat()})
        assert response.status_code == 200, response.text
        count: int = response.json()["by_owner"][owner]["renewals_due_next_quarter"]["count"]
        return count

    tick = timedelta(microseconds=1)
    assert await due(day(5) - tick) == 0  # not won yet
    assert await due(day(5)) == 1
    assert await due(day(6) - tick) == 1
    assert await due(day(6)) == 0  # out of Closed Won: cancelled then
    assert await due(day(6.5)) == 0
    assert await due(day(7) - tick) == 0
    assert await due(day(7)) == 1  # won again


async def test_a_late_reopen_older_than_the_win_changes_nothing(client, kafka_settings, unique):
    opp, owner = unique("006C"), unique("005LATE")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"), day(0), opp, stage="2", amount="100", change="created", owner_id=owner
            ),
            opportunity(unique("e3"), day(9), opp, stage="Closed Won"),
            opportunity(unique("e2"), day(4), opp, stage="3"),  # happened before the win
        ],
    )

    async def done() -> Any:
        detail = await get_json(client, f"/opportunities/{opp}")
        assert [h["stage"] for h in detail["history"]] == ["2", "3", "Closed Won"]
        return detail

    await eventually(done)
    doc = await get_json(client, f"/opportunities/{opp}/renewal")
    assert doc["status"] == "open"
    # The refolded history answers "as of" questions at every point of it.
    for moment, stage in ((day(2), "2"), (day(4), "3"), (day(8.9), "3")):
        response = await client.get("/pipeline", params={"as_of": moment.isoformat()})
        assert response.json()["by_owner"][owner]["open_by_stage"] == {
            stage: {"count": 1, "amount": "100.00"}
        }
    response = await client.get("/pipeline", params={"as_of": day(9).isoformat()})
    assert response.json()["by_owner"][owner]["open"] == {"count": 0, "amount": "0.00"}
    assert response.json()["as_of"] == day(9).isoformat().replace("+00:00", "Z")


async def test_a_won_renewal_makes_the_next_and_contract_end_wins(client, kafka_settings, unique):
    opp, renewal_opp = unique("006D"), unique("006R")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"),
                day(0),
                opp,
                stage="Closed Won",
                amount="1000",
                change="created",
                contract_end_date=date(2027, 2, 28),
                opportunity_type="New Business",
            ),
            # The renewal as the CRM has it, won a year later.
            opportunity(
                unique("e2"),
                day(300),
                renewal_opp,
                stage="Prospecting",
                amount="1000",
                change="created",
                opportunity_type="Renewal",
                pipeline="Renewals",
            ),
            opportunity(
                unique("e3"),
                day(360),
                renewal_opp,
                stage="Closed Won",
                close_date=date(2027, 2, 28),
            ),
        ],
    )

    async def both() -> tuple[Any, Any]:
        first = await get_json(client, f"/opportunities/{opp}/renewal")
        second = await get_json(client, f"/opportunities/{renewal_opp}/renewal")
        return first, second

    first, second = await eventually(both)
    assert first["close_date"] == "2027-02-28"
    assert second["close_date"] == "2028-02-28"
    assert second["id"] == renewal_id_for(renewal_opp) != first["id"]


async def test_expansions_make_no_renewal(client, kafka_settings, unique):
    opp, marker = unique("006E"), unique("006F")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"),
                day(0),
                opp,
                stage="Closed Won",
                amount="10",
                change="created",
                opportunity_type="Expansion",
            ),
            opportunity(unique("e2"), day(0), marker, stage="Closed Won", change="created"),
        ],
    )
    await eventually(lambda: get_json(client, f"/opportunities/{marker}/renewal"))
    await get_json(client, f"/opportunities/{opp}/renewal", 404)
    await get_json(client, f"/opportunities/{opp}")


async def test_pipeline_as_of_and_metrics(client, kafka_settings, unique):
    opp = unique("006G")
    owner = unique("005OWN")
    await publish(
        kafka_settings,
        [
            opportunity(
                unique("e1"),
                day(100),
                opp,
                stage="1 - Interest",
                amount="700",
                change="created",
                owner_id=owner,
                forecast_category="Pipeline",
            ),
            opportunity(
                unique("e2"), day(110), opp, stage="2 - Qualified", forecast_category="BestCase"
            ),
            opportunity(unique("e3"), day(120), opp, stage="Closed Lost"),
        ],
    )
    await eventually(lambda: get_json(client, f"/opportunities/{opp}/renewal", 404))

    async def as_of(n: float) -> Any:
        doc = await get_json(client, f"/pipeline?as_of={day(n).isoformat().replace('+', '%2B')}")
        return doc["by_owner"].get(owner)

    async def settled() -> None:
        detail = await get_json(client, f"/opportunities/{opp}")
        assert detail["status"] == "lost"

    await eventually(settled)
    at_105 = await as_of(105)
    assert at_105["open"] == {"count": 1, "amount": "700.00"}
    assert at_105["qualified_pipeline"]["count"] == 0
    at_115 = await as_of(115)
    assert at_115["qualified_pipeline"] == {"count": 1, "amount": "700.00"}
    assert at_115["open_by_category"] == {"Best Case": {"count": 1, "amount": "700.00"}}
    assert (await as_of(121))["open"]["count"] == 0

    start, end = day(100).isoformat(), day(121).isoformat()
    metrics = await client.get("/pipeline/metrics", params={"from": start, "to": end})
    assert metrics.status_code == 200, metrics.text
    doc = metrics.json()
    assert doc["lost"]["count"] >= 1 and doc["nbms"] >= 1 and doc["qualified"] >= 1
    naive = await client.get("/pipeline", params={"as_of": "2026-03-01T00:00:00"})
    assert naive.status_code == 422


async def test_account_tiers_and_onboarding(client, kafka_settings, unique):
    acct = unique("001T")
    await publish(
        kafka_settings,
        [
            account(unique("a1"), day(0), acct, users=100),  # quartz
            account(unique("a2"), day(10), acct, users=600),  # ruby: 5 -> 4 opens one
            account(unique("a3"), day(20), acct, plan="Ultimate", users=2001),  # diamond: none
        ],
    )

    async def tier() -> Any:
        doc = await get_json(client, f"/accounts/{acct}/tier")
        assert doc["tier"] == "diamond"
        return doc

    doc = await eventually(tier)
    assert [(h["tier_from"], h["tier_to"]) for h in doc["history"]] == [
        (None, "quartz"),
        ("quartz", "ruby"),
        ("ruby", "diamond"),
    ]
    onboardings = await get_json(client, f"/onboardings?account_id={acct}")
    assert onboardings["total"] == 1
    assert [(o["tier_from"], o["tier_to"]) for o in onboardings["items"]] == [("quartz", "ruby")]


async def test_unknown_ids_and_tokens(client):
    await get_json(client, "/opportunities/nope", 404)
    await get_json(client, "/opportunities/nope/renewal", 404)
    await get_json(client, "/accounts/nope/tier", 404)
    response = await client.get("/renewals", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    response = await client.post(
        "/forecast/snapshots", headers={"Authorization": "Bearer dev-read-token"}
    )
    assert response.status_code == 403
