"""A backfill run: each listing page by page, each page's events published and
acknowledged before its checkpoint is written, so an interrupted run resumes where it
stopped and loses nothing (a page published but not checkpointed is published again:
the same events, which every consumer skips).

A bad record (a value the normaliser refuses) is counted, named in the summary and
skipped; a bad page or a CRM that keeps failing stops its listing, not the others; a
refused credential, Kafka unreachable or Salesforce's API limit stop the run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from revops.events.catalogue import Envelope
from revops.events.crm import CredentialError
from revops.events.producer import KafkaUnavailable
from revops.ingest.backfill.calls import ApiLimitReached, ApiRefused, ApiUnavailable
from revops.ingest.backfill.sources import MalformedPage, Page, Source
from revops.ingest.domain.errors import MalformedEvent

T = TypeVar("T")
SHOWN_PROBLEMS = 5  # per listing: the summary names the first few bad records


class Publisher(Protocol):
    async def publish(self, events: Sequence[Envelope]) -> None: ...


# (listing, records read so far, records the listing holds or None)
Progress = Callable[[str, int, int | None], None]


@dataclass
class UnitSummary:
    unit: str
    read: int = 0
    published: int = 0  # events acknowledged by Kafka (0 in a dry run)
    events: int = 0
    bad: int = 0
    older: int = 0  # before --since (HubSpot, which cannot ask for them only)
    pages: int = 0
    finished: bool = False
    stopped: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Summary:
    crm: str
    dry_run: bool
    units: list[UnitSummary] = field(default_factory=list)
    stopped: str | None = None  # why the whole run stopped early

    @property
    def bad(self) -> int:
        return sum(u.bad for u in self.units)

    @property
    def complete(self) -> bool:
        return self.stopped is None and all(u.finished for u in self.units)


class Checkpoints:
    """Per listing, where to resume: a JSON file, rewritten whole (atomically) after
    each page Kafka acknowledged. ``scope`` keeps two orgs or portals apart."""

    def __init__(self, path: Path, scope: str) -> None:
        self.path = path
        self.scope = scope
        self._all: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                self._all = json.loads(path.read_text())
            except ValueError as exc:
                raise ValueError(
                    f"checkpoint file {path} is not JSON ({exc}): fix or remove it"
                ) from None

    def get(self, unit: str) -> dict[str, Any]:
        return dict(self._all.get(self.scope, {}).get(unit, {}))

    def save(self, unit: str, checkpoint: str | None, finished: bool) -> None:
        self._all.setdefault(self.scope, {})[unit] = {
            "checkpoint": checkpoint,
            "finished": finished,
        }
        self._write()

    def forget(self) -> None:
        """Start every listing of this scope from the beginning (``--restart``)."""
        if self._all.pop(self.scope, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._all, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


async def run_backfill(
    source: Source,
    objects: Sequence[str],
    publisher: Publisher | None,
    checkpoints: Checkpoints,
    *,
    received_at: datetime,
    since: datetime | None = None,
    progress: Progress | None = None,
) -> Summary:
    """``publisher`` None: a dry run (read and normalise, publish and checkpoint nothing)."""
    summary = Summary(crm=source.crm, dry_run=publisher is None)
    for unit in source.units(objects):
        result = UnitSummary(unit)
        summary.units.append(result)
        try:
            await _backfill_unit(
                source, unit, publisher, checkpoints, result, received_at, since, progress
            )
        except (MalformedPage, ApiRefused, ApiUnavailable) as exc:
            result.stopped = str(exc)
        except (CredentialError, KafkaUnavailable, ApiLimitReached) as exc:
            result.stopped = summary.stopped = str(exc)
            break
    return summary


async def _backfill_unit(
    source: Source,
    unit: str,
    publisher: Publisher | None,
    checkpoints: Checkpoints,
    result: UnitSummary,
    received_at: datetime,
    since: datetime | None,
    progress: Progress | None,
) -> None:
    start = checkpoints.get(unit).get("checkpoint")
    async for page in prefetched(source.pages(unit, start, since)):
        result.pages += 1
        events = _page_events(source, unit, page, result, received_at, since)
        result.events += len(events)
        if publisher is not None:
            await publisher.publish(events)
            result.published += len(events)
            checkpoints.save(unit, page.checkpoint, page.last)
        result.finished = page.last
        if progress is not None:
            progress(unit, result.read, page.total)


def _page_events(
    source: Source,
    unit: str,
    page: Page,
    result: UnitSummary,
    received_at: datetime,
    since: datetime | None,
) -> list[Envelope]:
    events: list[Envelope] = []
    for record in page.records:
        result.read += 1
        if not source.is_current(record, since):
            result.older += 1
            continue
        try:
            events.extend(source.events(unit, record, result.read - 1, received_at))
        except MalformedEvent as exc:
            result.bad += 1
            if len(result.problems) < SHOWN_PROBLEMS:
                result.problems.append(f"{_record_id(record)}: {exc}")
    return events


def _record_id(record: Any) -> str:
    if isinstance(record, dict):
        return str(record.get("Id") or record.get("id") or "record without an id")
    return "a record that is not an object"


async def prefetched(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """The pages, the next one already asked for while the caller handles this one (the
    CRM answers while Kafka acknowledges)."""
    iterator = aiter(pages)
    upcoming: asyncio.Task[T] | None = asyncio.ensure_future(anext(iterator))
    try:
        while upcoming is not None:
            try:
                page = await upcoming
            except StopAsyncIteration:
                return
            upcoming = asyncio.ensure_future(anext(iterator))
            yield page
    finally:
        if upcoming is not None and not upcoming.done():
            upcoming.cancel()
            try:
                await upcoming
            except (asyncio.CancelledError, StopAsyncIteration):
                pass
            except Exception:
                pass  # the caller already stopped for its own reason
