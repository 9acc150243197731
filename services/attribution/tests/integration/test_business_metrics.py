"""Attribution's business figure at /metrics: decisions written, counted once each when
their batch commits; a replayed event decides nothing new and counts nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

pytestmark = pytest.mark.infra


async def decisions(client: httpx.AsyncClient, subject: str) -> float:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "revops_attribution_decisions_total" and sample.labels == {
                "subject": subject
            }:
                return sample.value
    return 0.0


async def test_each_new_or_changed_person_decision_counts_once_a_replay_nothing(
    client: httpx.AsyncClient, kafka_settings: KafkaSettings, unique: Any, build: Any
) -> None:
    erin = f"{unique('erin')}@metrics.example"
    late_form = build.form(unique("late"), erin, build.day(10), "newsletter", "cmp-news")
    before = await decisions(client, "person")
    await publish(kafka_settings, [late_form])

    async def first_touchpoint(expected: str) -> None:
        r = await client.get("/leads", params={"email": erin})
        assert r.status_code == 200 and r.json()["first_touchpoint"] == expected, r.text

    await eventually(lambda: first_touchpoint("Subscription"))
    await counted(client, before + 1)

    # The same form again (skipped by the inbox), then an earlier sign-up that changes
    # the first touchpoint: one decision more.
    await publish(kafka_settings, [late_form])
    await publish(kafka_settings, [build.signup(unique("s"), erin, build.day(3))])
    await eventually(lambda: first_touchpoint("Cloud Sign-up"))
    await counted(client, before + 2)


async def counted(client: httpx.AsyncClient, expected: float) -> None:
    """Counted just after the commit that the API already shows: polled, briefly."""

    async def check() -> None:
        assert await decisions(client, "person") == expected

    await eventually(check, timeout_s=5)
