"""Salesforce Bulk API 2.0 query jobs, for the listings too large to page through REST
comfortably: create the job, wait for it to complete, read its CSV result sets one after
the other (``Sforce-Locator``), each streamed line by line, so memory stays at a page of
records whatever the object's size.

A job's results keep no order (Salesforce advises against ORDER BY in bulk queries: it
turns off the chunking that makes them fast), so the checkpoint is the job and the result
set to read next. A resumed run goes on with the same job while Salesforce keeps it; when
the job is gone, a new one starts from the stamp the old one started from (records read
twice give the same events, which consumers skip). A finished listing leaves the latest
SystemModstamp it read, as the REST path does: the next run, either way, asks only for
what changed since.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from revops.ingest.backfill.calls import ApiCaller, ApiRefused, ApiUnavailable, Sleep

_PREFIX = "bulk "
# Waits between looks at a job's state, in seconds; the last one repeats.
POLL_S = (0.5, 1, 2, 5, 10)
# Salesforce writes times in bulk results as 2025-01-01T00:00:01.000Z; its REST API as
# 2025-01-01T00:00:01.000+0000. Events derive their ids from the record's stamp as the
# REST API writes it, so either path gives the same event for the same record.
_CSV_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$")


class MalformedResults(Exception):
    """A result set that is not the CSV the job's query asked for."""


@dataclass(frozen=True)
class BulkPosition:
    """Where a bulk listing resumes: its job, the result set to read next (None: the
    first), the stamp the job's query started from, the latest stamp read so far."""

    job_id: str
    locator: str | None = None
    after: str | None = None
    newest: str | None = None

    def encode(self) -> str:
        return _PREFIX + orjson.dumps(self.__dict__).decode()


def read_checkpoint(checkpoint: str | None) -> tuple[str | None, BulkPosition | None]:
    """A listing's checkpoint -> (the stamp a new query starts from, the bulk job to go on
    with). A REST run given a bulk checkpoint starts from the job's own start."""
    if not checkpoint or not checkpoint.startswith(_PREFIX):
        return checkpoint or None, None
    try:
        fields = orjson.loads(checkpoint[len(_PREFIX) :])
        position = BulkPosition(**fields)
    except (ValueError, TypeError):
        raise ValueError(f"a bulk checkpoint that cannot be read: {checkpoint[:120]!r}") from None
    return position.after, position


@dataclass(frozen=True)
class ResultPage:
    records: list[dict[str, Any]]
    checkpoint: str | None
    last: bool


class BulkQuery:
    """One sObject's query as a Bulk API 2.0 job, read page by page."""

    def __init__(
        self,
        caller: ApiCaller,
        base_url: str,
        *,
        api_version: str,
        page_size: int,
        result_set_size: int,
        max_wait_s: float,
        sleep: Sleep,
    ) -> None:
        self._caller = caller
        self._jobs = f"{base_url}/services/data/{api_version}/jobs/query"
        self._page_size = page_size
        self._result_set_size = result_set_size
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self.total: int | None = None  # records the job found, once complete

    async def start(self, soql: str, after: str | None) -> BulkPosition:
        job = await self._caller.post_json(
            self._jobs,
            {
                "operation": "query",
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        )
        if not isinstance(job, dict) or not isinstance(job.get("id"), str):
            raise ApiRefused(f"Salesforce created a bulk query job without an id: {job!r:.200}")
        return BulkPosition(job_id=job["id"], after=after)

    async def still_kept(self, position: BulkPosition) -> bool:
        """Whether Salesforce still has the job, and it may still give its results."""
        try:
            job = await self._caller.get_json(f"{self._jobs}/{position.job_id}")
        except ApiRefused as refused:
            if refused.status == 404:
                return False
            raise
        return isinstance(job, dict) and job.get("state") not in ("Failed", "Aborted")

    async def wait_until_complete(self, sobject: str, position: BulkPosition) -> None:
        waited = 0.0
        polls = 0
        while True:
            job = await self._caller.get_json(f"{self._jobs}/{position.job_id}")
            state = job.get("state") if isinstance(job, dict) else None
            if state == "JobComplete":
                processed = job.get("numberRecordsProcessed")
                self.total = processed if isinstance(processed, int) else None
                return
            if state in ("Failed", "Aborted") or state is None:
                raise ApiRefused(
                    f"Salesforce's bulk query job {position.job_id} for {sobject} is "
                    f"{state or 'unreadable'}: {_job_error(job)}"
                )
            if waited >= self._max_wait_s:
                raise ApiUnavailable(
                    f"Salesforce's bulk query job {position.job_id} for {sobject} is still "
                    f"{state} after {waited:.0f} s (BACKFILL_SALESFORCE_BULK_MAX_WAIT_S): "
                    "run again later to resume with the same job"
                )
            wait = POLL_S[min(polls, len(POLL_S) - 1)]
            polls += 1
            waited += wait
            await self._sleep(wait)

    async def pages(self, sobject: str, position: BulkPosition) -> AsyncIterator[ResultPage]:
        """Every result set from the position's on, in pages; the last page's checkpoint
        is the latest stamp read (or the job's start when it found nothing)."""
        while True:
            next_locator: str | None = None
            page: list[dict[str, Any]] = []
            newest = position.newest
            async with self._caller.streamed(
                f"{self._jobs}/{position.job_id}/results", self._params(position.locator)
            ) as response:
                locator = response.headers.get("Sforce-Locator", "null")
                next_locator = None if locator in ("", "null") else locator
                async for record in csv_records(sobject, response.aiter_text()):
                    if len(page) == self._page_size:
                        # Resuming from here reads this result set again from its start.
                        yield ResultPage(page, replace(position, newest=newest).encode(), False)
                        page = []
                    page.append(record)
                    newest = _newer(newest, record.get("SystemModstamp"))
            position = replace(position, locator=next_locator, newest=newest)
            if next_locator is None:
                yield ResultPage(page, position.newest or position.after, last=True)
                return
            yield ResultPage(page, position.encode(), last=False)

    def _params(self, locator: str | None) -> dict[str, str]:
        params = {"maxRecords": str(self._result_set_size)}
        if locator:
            params["locator"] = locator
        return params


def _job_error(job: Any) -> str:
    if isinstance(job, dict) and job.get("errorMessage"):
        return str(job["errorMessage"])[:300]
    return "Salesforce gave no reason"


def _newer(newest: str | None, stamp: Any) -> str | None:
    if not isinstance(stamp, str) or not stamp:
        return newest
    return stamp if newest is None or stamp > newest else newest


async def csv_records(sobject: str, chunks: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """A result set's rows as records shaped as the REST API returns them: empty cells
    as null, ``Parent.Field`` columns as a nested parent, times written as REST writes
    them."""
    header: list[str] | None = None
    async for row in csv_rows(chunks):
        if header is None:
            header = row
            continue
        if len(row) != len(header):
            raise MalformedResults(
                f"a {sobject} result row with {len(row)} values under {len(header)} columns"
            )
        yield csv_record(sobject, header, row)


async def csv_rows(chunks: AsyncIterator[str]) -> AsyncIterator[list[str]]:
    """CSV rows as the text arrives: a row is parsed once its quotes are balanced (a
    quoted value may hold line breaks), so only the row being read is held."""
    pending = ""
    quotes = 0
    rest = ""
    async for chunk in chunks:
        # Rows end with LF or CRLF: split on LF only, so a CRLF cut between two chunks
        # is still one line end.
        *lines, rest = (rest + chunk).split("\n")
        for line in lines:
            line += "\n"
            pending += line
            quotes += line.count('"')
            if quotes % 2 == 0:
                yield from_line(pending)
                pending, quotes = "", 0
    pending += rest
    if pending.strip():
        if (quotes + rest.count('"')) % 2:
            raise MalformedResults("a result set that ends inside a quoted value")
        yield from_line(pending)


def from_line(text: str) -> list[str]:
    rows: Iterator[list[str]] = csv.reader([text])
    return next(rows, [])


def csv_record(sobject: str, header: list[str], row: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": sobject}}
    parents: dict[str, dict[str, Any]] = {}
    for name, cell in zip(header, row, strict=True):
        value = rest_value(cell)
        parent, dot, field = name.partition(".")
        if dot:
            parents.setdefault(parent, {})[field] = value
        else:
            record[name] = value
    for parent, fields in parents.items():
        # A parent that is not there comes as empty cells; REST gives it as null.
        has_any = any(value is not None for value in fields.values())
        record[parent] = {"attributes": {"type": parent}, **fields} if has_any else None
    return record


def rest_value(cell: str) -> str | None:
    if cell == "":
        return None
    if not cell.endswith("Z"):  # most cells: no time to rewrite
        return cell
    match = _CSV_TIME.match(cell)
    if match is None:
        return cell
    return f"{match[1]}{match[2] or '.000'}+0000"
