"""Events in through Kafka, answers out of the API, against the real broker and Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from revops.events.catalogue import FormSubmitted, FormSubmittedEvent, make_event
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

pytestmark = pytest.mark.infra


async def get_json(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def credit(answer: dict[str, Any], model: str) -> dict[str, float]:
    return {c["campaign_id"]: c["credit"][model] for c in answer["campaigns"]}


async def test_the_outbound_rule_late_forms_and_later_contacts(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, story: Any, build: Any
) -> None:
    await publish(kafka_settings, story.events)
    opportunity_url = f"/opportunities/{story.opportunity_id}/attribution"

    async def decided() -> dict[str, Any]:
        # Bob's record and Jane's forms travel on other topics than the conversion.
        assert (await get_json(client, "/leads", email=story.bob))["account_id"]
        assert len((await get_json(client, "/leads", email=story.jane))["touches"]) == 2
        answer = await get_json(client, opportunity_url)
        assert answer["source_rule"] is not None
        assert answer["converted_lead_email"] == story.jane
        return dict(answer)

    answer = await eventually(decided)
    assert answer["opportunity_source"] == "SDR Created"
    assert answer["source_rule"] == "outbound_contact_60d"
    assert answer["lead_source"] == "Inbound"
    assert answer["source_email"] == story.bob
    assert story.bob in answer["reason"] and "30 days" in answer["reason"]
    assert answer["primary_campaign_id"] == "cmp-demo"
    assert answer["first_touchpoint"] == "Content Download"
    # The ebook was 41 days before the opportunity: outside the 30-day window.
    assert [c["campaign_id"] for c in answer["campaigns"]] == ["cmp-webinar", "cmp-demo"]
    # FT on Bob's webinar; LC and OC on Jane's demo (her ebook is out of the window).
    assert credit(answer, "w_shaped") == {"cmp-webinar": 0.333333, "cmp-demo": 0.666667}
    for model in (
        "first_touch",
        "lead_creation",
        "u_shaped",
        "w_shaped",
        "full_path",
        "linear",
        "last_touch",
        "time_decay",
    ):
        assert sum(answer["credit_by_campaign"][model].values()) == pytest.approx(1, abs=1e-9)

    lead = await get_json(client, "/leads", email=story.jane.upper())
    assert lead["lead_source"] == "Inbound"
    assert lead["first_touchpoint"] == "Content Download"
    assert lead["first_touch_at"].startswith(build.day(0).isoformat()[:19])
    assert lead["original_source"] == "PAID_SEARCH"
    assert lead["account_id"] == story.account_id
    assert [t["campaign_id"] for t in lead["touches"]] == ["cmp-ebook", "cmp-demo"]

    await publish(kafka_settings, story.late_events)

    async def late_form_counted() -> dict[str, Any]:
        assert (await get_json(client, "/leads", email=story.carol))["account_id"]
        answer = await get_json(client, opportunity_url)
        assert len(answer["campaigns"]) == 3
        return dict(answer)

    answer = await eventually(late_form_counted)
    assert [c["campaign_id"] for c in answer["campaigns"]] == [
        "cmp-webinar",
        "cmp-contact",
        "cmp-demo",
    ]
    # Jane's late form is now her earliest in the window: lead creation moves to it.
    assert credit(answer, "w_shaped") == {
        "cmp-webinar": 0.333334,
        "cmp-contact": 0.333333,
        "cmp-demo": 0.333333,
    }
    # Carol (AE Created) joined the account after Jane was created: no change.
    assert answer["opportunity_source"] == "SDR Created"
    assert answer["source_email"] == story.bob
    # The primary campaign is still Jane's last form before the opportunity.
    assert answer["primary_campaign_id"] == "cmp-demo"

    async def qualified() -> dict[str, Any]:
        report = await get_json(
            client,
            "/reports/pipeline-by-source",
            **{"from": build.day(0).date().isoformat(), "to": build.day(60).isoformat()},
            qualified_only="true",
        )
        sources = {line["key"]: line for line in report["by_opportunity_source"]}
        assert "SDR Created" in sources
        return dict(report)

    report = await eventually(qualified)
    sources = {line["key"]: line for line in report["by_opportunity_source"]}
    assert sources["SDR Created"]["opportunities"] >= 1
    assert float(sources["SDR Created"]["amount"]) >= 50000


async def test_an_outbound_lead_is_uncategorized_until_its_first_form(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique: Any, build: Any
) -> None:
    dave = f"{unique('dave')}@globex.example"
    await publish(
        kafka_settings,
        [
            build.person(
                unique("p"),
                dave,
                build.day(0),
                object_id=unique("00Q"),
                lead_source="SDR Created",
                person_type="lead",
            )
        ],
    )

    async def known() -> dict[str, Any]:
        return dict(await get_json(client, "/leads", email=dave))

    lead = await eventually(known)
    assert lead["lead_source"] == "SDR Created"
    assert lead["first_touchpoint"] == "Uncategorized"
    assert lead["first_touch_at"] is None
    assert lead["original_source"] == "OFFLINE"

    await publish(kafka_settings, [build.form(unique("f"), dave, build.day(5), "demo", "cmp-d")])

    async def touched() -> dict[str, Any]:
        lead = await get_json(client, "/leads", email=dave)
        assert lead["first_touchpoint"] == "Contact/Demo Form"
        return dict(lead)

    lead = await eventually(touched)
    assert lead["lead_source"] == "SDR Created"
    assert lead["original_source"] == "OFFLINE"


async def test_an_earlier_form_arriving_later_becomes_the_first_touchpoint(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique: Any, build: Any
) -> None:
    erin = f"{unique('erin')}@initech.example"
    await publish(
        kafka_settings,
        [build.form(unique("late"), erin, build.day(10), "newsletter", "cmp-news")],
    )

    async def first() -> None:
        lead = await get_json(client, "/leads", email=erin)
        assert lead["first_touchpoint"] == "Subscription"

    await eventually(first)
    await publish(
        kafka_settings,
        [
            build.signup(
                unique("s"),
                erin,
                build.day(3),
                url="https://sourcegraph.com/?utm_medium=email&utm_campaign=launch",
            ),
        ],
    )

    async def corrected() -> dict[str, Any]:
        lead = await get_json(client, "/leads", email=erin)
        assert lead["first_touchpoint"] == "Cloud Sign-up"
        return dict(lead)

    lead = await eventually(corrected)
    assert lead["original_source"] == "EMAIL_MARKETING"
    assert lead["lead_source"] == "Inbound"
    assert [t["kind"] for t in lead["touches"]] == ["cloud_signup", "form"]


async def test_a_manual_opportunity_takes_its_given_source_and_60_61_days(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique: Any, build: Any
) -> None:
    account = unique("001")
    manual = unique("006MAN")
    at_60, at_61 = (f"{unique(n)}@hooli.example" for n in ("sixty", "sixtyone"))
    lead = f"{unique('lead')}@hooli.example"
    other_account = unique("001B")
    converted_60, converted_61 = unique("006A"), unique("006B")
    lead_61 = f"{unique('lead61')}@pied.example"
    await publish(
        kafka_settings,
        [
            build.opportunity(
                unique("o"),
                build.day(1),
                opportunity_id=manual,
                account_id=account,
                stage="2 - Qualified",
                lead_source="Partner",
            ),
            # 60 days before the lead: counts.
            build.person(
                unique("c60"),
                at_60,
                build.day(0),
                object_id=unique("003A"),
                lead_source="SDR Created",
                account_id=account,
            ),
            build.form(unique("f60"), lead, build.day(60), "demo", "cmp-x"),
            build.conversion(
                unique("cv60"),
                build.day(61),
                lead_id=unique("00QA"),
                account_id=account,
                opportunity_id=converted_60,
                email=lead,
            ),
            # 61 days before the lead: does not.
            build.person(
                unique("c61"),
                at_61,
                build.day(0),
                object_id=unique("003B"),
                lead_source="AE Created",
                account_id=other_account,
            ),
            build.form(unique("f61"), lead_61, build.day(61), "demo", "cmp-y"),
            build.conversion(
                unique("cv61"),
                build.day(62),
                lead_id=unique("00QB"),
                account_id=other_account,
                opportunity_id=converted_61,
                email=lead_61,
            ),
        ],
    )

    # Across topics nothing arrives in order: wait until every event is applied (the
    # contacts known with their accounts), or a decision could be read before its inputs.
    async def contacts_known() -> None:
        for email in (at_60, at_61):
            assert (await get_json(client, "/leads", email=email))["account_id"]

    await eventually(contacts_known)

    async def decided(opportunity_id: str) -> dict[str, Any]:
        answer = await get_json(client, f"/opportunities/{opportunity_id}/attribution")
        assert answer["source_rule"] is not None
        assert answer["converted_lead_email"] or opportunity_id == manual
        return dict(answer)

    answer = await eventually(lambda: decided(manual))
    assert (answer["opportunity_source"], answer["source_rule"]) == ("Partner", "manual")
    assert answer["lead_source"] is None

    answer = await eventually(lambda: decided(converted_60))
    assert answer["source_rule"] == "outbound_contact_60d"
    assert answer["opportunity_source"] == "SDR Created"
    answer = await eventually(lambda: decided(converted_61))
    assert answer["source_rule"] == "converted_lead"
    assert answer["opportunity_source"] == "Inbound"
    # No opportunity.changed yet: the conversion's time stands for the creation time.
    assert answer["created_at"].startswith(build.day(62).isoformat()[:19])


async def test_the_api_wants_a_token_and_says_what_is_unknown(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/leads", params={"email": "x@y.example"}, headers={"Authorization": ""}
    )
    assert response.status_code == 401
    response = await client.get("/leads", params={"email": "nobody@nowhere.example"})
    assert response.status_code == 404
    assert "nobody@nowhere.example" in response.json()["detail"]
    response = await client.get("/opportunities/006NOPE/attribution")
    assert response.status_code == 404
    response = await client.get("/leads", params={"email": "not-an-email"})
    assert response.status_code == 422


async def test_original_source_comes_from_the_first_page_seen_when_hubspot_tells_it(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings
) -> None:
    email = f"first-page-{uuid.uuid4().hex[:8]}@example.org"
    submitted = make_event(
        FormSubmittedEvent,
        id=f"hubspot:first-page:{email}",
        source="hubspot",
        occurred_at=datetime(2024, 6, 3, 9, 0, tzinfo=UTC),
        payload=FormSubmitted(
            email=email,
            form_id="form-demo",
            form_type="demo",
            page_url="https://example.com/demo",
            referrer="https://www.bing.com/",
            first_page_url="https://example.com/?utm_source=news&utm_medium=email",
            first_referrer=None,
        ),
    )
    await publish(kafka_settings, [submitted])

    async def decided() -> dict[str, Any]:
        lead = await get_json(client, "/leads", email=email)
        assert lead["original_source"] is not None
        return dict(lead)

    lead = await eventually(decided)
    assert lead["original_source"] == "EMAIL_MARKETING"  # not the form page's search visit
    assert lead["first_url"] == "https://example.com/?utm_source=news&utm_medium=email"
    assert lead["first_referrer"] is None
    assert [t["page_url"] for t in lead["touches"]] == ["https://example.com/demo"]
