"""A recompute from the topics gives the same answers as the live run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from revops.attribution.main import SPEC
from revops.attribution.recompute import recompute
from revops.attribution.settings import AttributionSettings
from revops.events.settings import KafkaSettings
from revops.events.testing import eventually, publish

pytestmark = pytest.mark.infra


async def answers(client: httpx.AsyncClient, story: Any, build: Any) -> dict[str, Any]:
    urls = [f"/opportunities/{story.opportunity_id}/attribution"] + [
        f"/leads?email={email}" for email in (story.jane, story.bob, story.carol)
    ]
    report = (
        "/reports/pipeline-by-source?qualified_only=false"
        f"&from={build.day(-90).date()}&to={build.day(90).date()}"
    )
    result = {}
    for url in [*urls, report]:
        response = await client.get(url)
        assert response.status_code == 200, (url, response.text)
        result[url] = response.json()
    return result


async def test_recompute_equals_the_live_run(
    settings: AttributionSettings, kafka_settings: KafkaSettings, story: Any, build: Any
) -> None:
    events = story.events + story.late_events
    await publish(kafka_settings, events)
    async with build.running_service(settings) as client:

        async def all_applied() -> dict[str, Any]:
            live = await answers(client, story, build)
            opportunity = live[f"/opportunities/{story.opportunity_id}/attribution"]
            assert len(opportunity["campaigns"]) == 3
            report = live[next(url for url in live if url.startswith("/reports"))]
            assert report["by_opportunity_source"][0]["key"] == "SDR Created"
            carol = live[f"/leads?email={story.carol}"]
            assert carol["lead_source"] == "AE Created"
            return live

        live = await eventually(all_applied)

    progress: list[tuple[int, int]] = []
    result = await recompute(
        settings, SPEC, progress=lambda done, total: progress.append((done, total))
    )
    assert result.events == len(events)
    assert result.opportunities == 1
    assert result.people == 3
    assert progress[-1] == (len(events), len(events))

    async with build.running_service(settings) as client:
        assert await answers(client, story, build) == live
