"""Salesforce listings through Bulk API 2.0 query jobs, against the fake org and the real
broker: the same events as the REST pages give; large listings chosen by their size; an
interrupted run goes on with the same job from the result set it stopped at, or starts a
new job when Salesforce no longer keeps it; a failed or slow job stops its listing with a
clear message."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from revops.events import topics
from revops.events.settings import KafkaSettings
from revops.events.testing import create_topics, unique_prefix
from revops.ingest.backfill.command import backfill
from revops.ingest.backfill.fake_crm import FakeOrg, iso, serving, sfid
from revops.ingest.backfill.sources import OBJECTS

from .backfill_helpers import (
    CRM_TOPICS,
    Waits,
    on_topic,
    settings_for,
    unit,
)

pytestmark = pytest.mark.infra


async def own_topics() -> KafkaSettings:
    settings = KafkaSettings(topic_prefix=unique_prefix())
    await create_topics(settings)
    return settings


@pytest.fixture
async def kafka(infra: None) -> KafkaSettings:
    return await own_topics()


@pytest.fixture
async def org() -> AsyncIterator[FakeOrg]:
    fake = FakeOrg(
        accounts=30,
        contacts_per_account=2,
        leads=4,
        activities=6,
        users=3,
        page_size=10,
        broken={("Contact", 3)},
    )
    async with serving(fake) as served:
        yield served


def comparable(event: Any) -> tuple[str, str, str, str]:
    return (event.id, event.type, event.occurred_at.isoformat(), event.payload.model_dump_json())


def checkpoint(state: Path, sobject: str) -> Any:
    (scope,) = json.loads(state.read_text()).values()
    return scope[sobject]["checkpoint"]


async def test_bulk_jobs_publish_the_same_events_as_rest_pages(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    rest = await backfill(
        "salesforce",
        settings_for(org, kafka, tmp_path / "rest.json", backfill_salesforce_api="rest"),
        objects=OBJECTS,
    )
    assert rest.complete and org.bulk.created == 0
    bulk_kafka = await own_topics()
    state = tmp_path / "bulk.json"
    # Result sets of 7 records: pages end where sets end, a set's rows come in no order.
    settings = settings_for(
        org,
        bulk_kafka,
        state,
        backfill_salesforce_api="bulk",
        backfill_salesforce_bulk_result_set=7,
    )
    bulk = await backfill("salesforce", settings, objects=OBJECTS, sleep=Waits())
    assert bulk.complete, bulk
    # One job per listing: Account, Contact, Lead, Opportunity, OpportunityHistory, Task, Event.
    assert org.bulk.created == 7
    assert {job.sobject for job in org.bulk.jobs.values()} == {u.unit for u in bulk.units}
    assert all(job.state == "JobComplete" for job in org.bulk.jobs.values())

    for spec in CRM_TOPICS:
        by_rest = sorted(comparable(e) for e in await on_topic(kafka, spec))
        by_bulk = sorted(comparable(e) for e in await on_topic(bulk_kafka, spec))
        assert by_bulk == by_rest and by_rest, spec
    contacts = unit(bulk, "Contact")
    assert (contacts.read, contacts.bad) == (60, 1)
    assert contacts.problems[0].startswith(sfid("003", 3)) and "Email" in contacts.problems[0]

    # Each result set comes newest first: the listing still keeps its newest stamp, as
    # REST keeps its last one, so the next run asks only for what changed since.
    assert checkpoint(state, "Account") == iso(org.stamp(30))
    again = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
    assert again.complete and unit(again, "Account").read == 1


async def test_auto_reads_through_bulk_only_the_listings_over_the_size(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    settings = settings_for(
        org, kafka, tmp_path / "checkpoints.json", backfill_salesforce_bulk_over=40
    )
    summary = await backfill("salesforce", settings, objects=["accounts", "contacts"])
    assert summary.complete
    assert [job.sobject for job in org.bulk.jobs.values()] == ["Contact"]  # 60 over 40
    assert (unit(summary, "Account").read, unit(summary, "Contact").read) == (30, 60)
    people = await on_topic(kafka, topics.PEOPLE)
    assert len(people) == len({e.id for e in people}) == 59  # the one page REST read: unused


async def test_an_interrupted_bulk_run_goes_on_with_the_same_job(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    fake = FakeOrg(accounts=60, contacts_per_account=1, fail_after_pages=3)
    async with serving(fake) as org:
        state = tmp_path / "checkpoints.json"
        settings = settings_for(
            org,
            kafka,
            state,
            backfill_salesforce_api="bulk",
            backfill_salesforce_bulk_result_set=10,
        )
        first = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
        stopped = unit(first, "Account")
        assert not first.complete and "run again later to resume" in (stopped.stopped or "")
        assert stopped.published == 30  # three result sets acknowledged and checkpointed
        assert checkpoint(state, "Account").startswith("bulk ")

        org.fail_after_pages = None  # the CRM is back
        second = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
        assert second.complete
        assert org.bulk.created == 1  # the same job, from its fourth result set
        assert unit(second, "Account").read == 30

    ids = Counter(e.payload.account_id for e in await on_topic(kafka, topics.ACCOUNTS))
    assert ids == Counter({sfid("001", i): 1 for i in range(1, 61)})  # all, once each


async def test_a_job_salesforce_no_longer_keeps_starts_over_and_loses_nothing(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    fake = FakeOrg(accounts=60, contacts_per_account=1, fail_after_pages=3)
    async with serving(fake) as org:
        settings = settings_for(
            org,
            kafka,
            tmp_path / "checkpoints.json",
            backfill_salesforce_api="bulk",
            backfill_salesforce_bulk_result_set=10,
        )
        first = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
        assert unit(first, "Account").published == 30
        org.fail_after_pages = None
        org.bulk.delete()  # days later: the job's results are gone
        second = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
        assert second.complete and org.bulk.created == 2
        # Its rows came in no order: the new job starts where the old one started.
        assert unit(second, "Account").read == 60

    accounts = await on_topic(kafka, topics.ACCOUNTS)
    assert {e.payload.account_id for e in accounts} == {sfid("001", i) for i in range(1, 61)}
    assert len({e.id for e in accounts}) == 60  # repeats carry the same event ids


async def test_a_failed_job_stops_its_listing_with_salesforce_s_reason(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    org.bulk.failure = "Query timed out"
    settings = settings_for(
        org, kafka, tmp_path / "checkpoints.json", backfill_salesforce_api="bulk"
    )
    summary = await backfill(
        "salesforce", settings, objects=["accounts", "contacts"], sleep=Waits()
    )
    assert summary.stopped is None  # the run went on to the next listing
    for name in ("Account", "Contact"):
        stopped = unit(summary, name).stopped or ""
        assert "bulk query job 750" in stopped and name in stopped, stopped
        assert "is Failed: Query timed out" in stopped
    assert await on_topic(kafka, topics.ACCOUNTS) == []


async def test_a_slow_job_stops_the_run_after_the_wait_and_the_next_run_takes_it_up(
    org: FakeOrg, kafka: KafkaSettings, tmp_path: Path
) -> None:
    org.bulk.polls = 100
    settings = settings_for(
        org,
        kafka,
        tmp_path / "checkpoints.json",
        backfill_salesforce_api="bulk",
        backfill_salesforce_bulk_max_wait_s=5,
    )
    waits = Waits()
    first = await backfill("salesforce", settings, objects=["accounts"], sleep=waits)
    assert waits.asked == [0.5, 1, 2, 5]  # looks at the job less and less often
    stopped = unit(first, "Account").stopped or ""
    assert "still InProgress after 8 s" in stopped and "BULK_MAX_WAIT_S" in stopped

    (job,) = org.bulk.jobs.values()
    job.polls_left = 0  # Salesforce finished it meanwhile
    second = await backfill("salesforce", settings, objects=["accounts"], sleep=Waits())
    assert second.complete and unit(second, "Account").read == 30
    assert org.bulk.created == 1
