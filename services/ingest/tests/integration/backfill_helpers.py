"""What the backfill's integration tests share: settings pointed at a fake CRM and this
test's topics, the events on a topic, a listing's summary, waits that wait for nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from revops.events import admin, topics
from revops.events.codec import decode_event
from revops.events.settings import KafkaSettings
from revops.events.testing import read_records
from revops.events.topics import TopicSpec
from revops.ingest.backfill.command import BackfillSettings
from revops.ingest.backfill.fake_crm import FakeOrg
from revops.ingest.backfill.run import Summary


class Waits:
    """Stands in for asyncio.sleep: records each wait the run asks for, waits none."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


CRM_TOPICS = (topics.PEOPLE, topics.ACCOUNTS, topics.OPPORTUNITIES, topics.ACTIVITIES)


def settings_for(org: FakeOrg, kafka: KafkaSettings, state: Path, **extra: Any) -> BackfillSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka.kafka_bootstrap_servers,
        "topic_prefix": kafka.topic_prefix,
        "salesforce_login_url": org.url,
        "salesforce_client_id": org.client_id,
        "salesforce_client_secret": SecretStr(org.client_secret),
        "hubspot_api_base": org.url,
        "hubspot_access_token": SecretStr(org.hubspot_token),
        "backfill_state_file": state,
    }
    values.update(extra)
    return BackfillSettings(**values)


async def on_topic(kafka: KafkaSettings, spec: TopicSpec) -> list[Any]:
    """Every event on the topic (the end offsets say how many there are)."""
    name = spec.name(kafka.topic_prefix)
    lags = await admin.group_lag(kafka.kafka_bootstrap_servers, "nobody", [name])
    count = sum(p.end for p in lags)
    if count == 0:
        return []
    return [decode_event(r.value) for r in await read_records(kafka, name, count)]


def unit(summary: Summary, name: str) -> Any:
    return next(u for u in summary.units if u.unit == name)
