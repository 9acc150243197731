"""The backfill against the fake CRMs and the real broker: every listing read page by
page and published as the webhooks' events; a second run changes nothing; an
interrupted run resumes where it stopped and loses nothing; bad records, 429s and
Salesforce's API limit are counted and said, never a traceback."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from revops.events import topics
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, unique_prefix
from revops.ingest.backfill.command import backfill
from revops.ingest.backfill.fake_crm import FakeOrg, serving, sfid
from revops.ingest.backfill.sources import OBJECTS

from .backfill_helpers import (
    CRM_TOPICS,
    Waits,
    on_topic,
    settings_for,
    unit,
)

pytestmark = pytest.mark.infra


@pytest.fixture
async def kafka(infra: None) -> KafkaSettings:
    """Topics of this test's own: each test counts only its own events."""
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    return settings


@pytest.fixture
async def org() -> AsyncIterator[FakeOrg]:
    fake = FakeOrg(
        accounts=30,
        contacts_per_account=2,
        leads=4,
        activities=6,
        users=3,
        page_size=10,
        hubspot_page_max=10,
        broken={("Contact", 3), ("companies", 5)},
    )
    async with serving(fake) as served:
        yield served


async def test_both_crms_backfilled_then_a_second_run_changes_nothing(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    settings = settings_for(org, kafka, tmp_path / "checkpoints.json")
    sf = await backfill("salesforce", settings, objects=OBJECTS)
    hs = await backfill("hubspot", settings, objects=OBJECTS)
    assert sf.complete and hs.complete, (sf, hs)

    accounts = unit(sf, "Account")
    assert (accounts.read, accounts.bad, accounts.pages) == (30, 0, 3)
    contacts = unit(sf, "Contact")
    assert (contacts.read, contacts.bad) == (60, 1)
    assert contacts.problems[0].startswith(sfid("003", 3)) and "Email" in contacts.problems[0]
    assert unit(sf, "OpportunityHistory").read == 60
    assert unit(hs, "companies").bad == 1 and "users" in unit(hs, "companies").problems[0]
    assert unit(hs, "companies").pages == math.ceil(30 / 10)

    account_events = await on_topic(kafka, topics.ACCOUNTS)
    assert len(account_events) == 30 + 29
    by_id = {e.payload.account_id: e.payload for e in account_events}
    seventh = by_id[sfid("001", 7)]
    assert seventh.domains == ["account7.example.com"]
    assert (seventh.users, seventh.plan, seventh.iacv) == (17, "Team", 8000)
    assert seventh.owner_id == sfid("005", 2)
    company = by_id["9"]
    assert (company.users, company.plan, company.domains) == (
        19,
        "Enterprise",
        ["company9.example.net"],
    )
    people = await on_topic(kafka, topics.PEOPLE)
    assert len(people) == 59 + 4 + 60  # Salesforce contacts (one bad), leads, HubSpot contacts
    opportunities = await on_topic(kafka, topics.OPPORTUNITIES)
    # Salesforce: 30 opportunities and 60 stage changes; HubSpot: 30 deals, 2 stages each.
    assert len(opportunities) == 30 + 60 + 30 + 60
    assert len(await on_topic(kafka, topics.ACTIVITIES)) == 6 + 6
    first_ids: set[str] = set()
    for spec in CRM_TOPICS:
        first_ids.update(e.id for e in await on_topic(kafka, spec))

    again_sf = await backfill("salesforce", settings, objects=OBJECTS)
    again_hs = await backfill("hubspot", settings, objects=OBJECTS)
    assert again_sf.complete and again_hs.complete
    # Salesforce asks only for what changed since the last stamp it published (that
    # second's records again); HubSpot lists everything again.
    assert unit(again_sf, "Account").read == 1
    assert unit(again_hs, "companies").read == 30
    published: Counter[str] = Counter()
    for spec in CRM_TOPICS:
        published.update(e.id for e in await on_topic(kafka, spec))
    assert set(published) == first_ids  # the same events again: consumers skip them
    assert sum(published.values()) > len(first_ids)


async def test_an_interrupted_run_resumes_where_it_stopped_and_loses_nothing(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    fake = FakeOrg(accounts=60, contacts_per_account=1, page_size=10, fail_after_pages=3)
    async with serving(fake) as org:
        settings = settings_for(org, kafka, tmp_path / "checkpoints.json")
        waits = Waits()
        first = await backfill("salesforce", settings, objects=["accounts"], sleep=waits)
        stopped = unit(first, "Account")
        assert not first.complete and not stopped.finished
        assert "failed 4 times in a row" in (stopped.stopped or "")
        assert "run again later to resume" in (stopped.stopped or "")
        assert waits.asked == [1.0, 2.0, 4.0]  # backing off, not hammering
        assert stopped.published == 30  # three pages acknowledged and checkpointed

        org.fail_after_pages = None  # the CRM is back
        second = await backfill("salesforce", settings, objects=["accounts"], sleep=waits)
        assert second.complete
        # From the last stamp published: record 30 again, then 31 to 60.
        assert unit(second, "Account").read == 31

    accounts = await on_topic(kafka, topics.ACCOUNTS)
    ids = Counter(e.payload.account_id for e in accounts)
    assert set(ids) == {sfid("001", i) for i in range(1, 61)}  # nothing lost
    assert ids[sfid("001", 30)] == 2 and len(accounts) == 61  # one repeat, same event id
    assert len({e.id for e in accounts}) == 60


async def test_429s_are_waited_out_as_asked_and_counted(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    org.throttle, org.retry_after = 2, "7"
    waits = Waits()
    settings = settings_for(org, kafka, tmp_path / "checkpoints.json")
    summary = await backfill("hubspot", settings, objects=["accounts"], sleep=waits)
    assert summary.complete
    assert waits.asked == [7.0, 7.0]
    assert unit(summary, "companies").read == 30


async def test_salesforce_api_limit_stops_the_run_and_it_resumes_later(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    org.api_limit = 10  # 90% of it: the 9th call (the 6th page of contacts) stops the run
    settings = settings_for(org, kafka, tmp_path / "checkpoints.json")
    summary = await backfill("salesforce", settings, objects=["accounts", "contacts"])
    assert summary.stopped is not None
    assert "9/10" in summary.stopped and "BACKFILL_SALESFORCE_MAX_API_SHARE" in summary.stopped
    assert unit(summary, "Account").finished
    org.api_limit = 1_000_000  # a new day
    resumed = await backfill("salesforce", settings, objects=["accounts", "contacts"])
    assert resumed.complete
    assert unit(summary, "Contact").read == 50  # five pages, contact 3 refused
    assert unit(summary, "Contact").published == 49
    assert unit(resumed, "Contact").read == 11  # on from its checkpoint: contacts 50 to 60
    emails = {e.payload.email for e in await on_topic(kafka, topics.PEOPLE)}
    assert len(emails) == 59  # every contact but the broken one


async def test_dry_run_since_and_objects(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    state = tmp_path / "checkpoints.json"
    settings = settings_for(org, kafka, state)
    dry = await backfill("salesforce", settings, objects=["accounts"], dry_run=True)
    assert dry.complete and unit(dry, "Account").events == 30
    assert [u.unit for u in dry.units] == ["Account"]
    assert not state.exists()
    assert await on_topic(kafka, topics.ACCOUNTS) == []

    since = org.stamp(21)
    sf = await backfill("salesforce", settings, objects=["accounts"], since=since)
    hs = await backfill("hubspot", settings, objects=["accounts"], since=since)
    assert unit(sf, "Account").read == 10  # asked only for them
    assert (unit(hs, "companies").read, unit(hs, "companies").older) == (30, 20)
    accounts = await on_topic(kafka, topics.ACCOUNTS)
    assert all(e.occurred_at >= since for e in accounts)
    assert len(accounts) == 10 + 10
