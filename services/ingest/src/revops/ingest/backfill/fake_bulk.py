"""Salesforce's Bulk API 2.0 query jobs in the fake org (``fake_crm``): a job is created
from a SOQL query, is in progress for a few looks, then complete (or failed, when told),
and its CSV results come in sets paged by ``Sforce-Locator``, each set's rows in reverse
order (a bulk job keeps no order) and streamed as they are written, as Salesforce writes
them: null empty, booleans in lower case, times in UTC with a Z."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import StreamingResponse

from revops.ingest.backfill.fake_records import salesforce_record, sfid

if TYPE_CHECKING:
    from revops.ingest.backfill.fake_crm import FakeOrg


@dataclass
class BulkJob:
    id: str
    operation: str
    sobject: str
    fields: list[str]
    start: int
    end: int
    polls_left: int
    state: str = "UploadComplete"
    error: str | None = None

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": "005000000000001AAA",
            "createdDate": "2025-01-01T00:00:00.000+0000",
            "systemModstamp": "2025-01-01T00:00:00.000+0000",
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": 61.0,
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self.state == "JobComplete":
            body.update(numberRecordsProcessed=self.end - self.start, retries=0)
        if self.error is not None:
            body["errorMessage"] = self.error
        return body


@dataclass
class BulkJobs:
    """The org's query jobs, and how the next ones behave."""

    polls: int = 2  # looks at a job before it is complete
    result_set: int = 10_000  # records a result set holds when the call names none
    failure: str | None = None  # jobs fail with this message
    jobs: dict[str, BulkJob] = field(default_factory=dict)
    created: int = 0

    def delete(self) -> None:
        """Salesforce deletes a query job's results some days after it completes."""
        self.jobs.clear()


class SalesforceQueries(Protocol):
    def parse(self, soql: str) -> Response | tuple[str, list[str], int, int]: ...

    def refusal(self, request: Request) -> Response | None: ...


def _json(body: Any, headers: dict[str, str]) -> Response:
    return Response(orjson.dumps(body), headers=headers, media_type="application/json")


def _salesforce_error(status: int, code: str, message: str) -> Response:
    return Response(
        orjson.dumps([{"message": message, "errorCode": code}]),
        status_code=status,
        media_type="application/json",
    )


class _Bulk:
    def __init__(self, org: FakeOrg, salesforce: SalesforceQueries) -> None:
        self.org = org
        self._salesforce = salesforce

    def create_job(self, body: Any) -> Response:
        jobs = self.org.bulk
        if not isinstance(body, dict) or body.get("operation") not in ("query", "queryAll"):
            return _salesforce_error(400, "INVALIDJOB", "operation must be query or queryAll")
        if body.get("contentType", "CSV") != "CSV":
            return _salesforce_error(400, "INVALIDJOB", "only CSV is supported")
        parsed = self._salesforce.parse(str(body.get("query", "")))
        if isinstance(parsed, Response):
            return parsed
        sobject, fields, start, end = parsed
        jobs.created += 1
        job = BulkJob(
            id=sfid("750", jobs.created),
            operation=body["operation"],
            sobject=sobject,
            fields=fields,
            start=start,
            end=end,
            polls_left=jobs.polls,
        )
        jobs.jobs[job.id] = job
        return _json(job.info(), headers=self._usage())

    def job(self, job_id: str) -> Response:
        job = self.org.bulk.jobs.get(job_id)
        if job is None:
            return _salesforce_error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state in ("UploadComplete", "InProgress"):
            if job.polls_left > 0:
                job.polls_left -= 1
                job.state = "InProgress"
            elif self.org.bulk.failure is not None:
                job.state, job.error = "Failed", self.org.bulk.failure
            else:
                job.state = "JobComplete"
        return _json(job.info(), headers=self._usage())

    def results(self, job_id: str, locator: str | None, max_records: int | None) -> Response:
        org = self.org
        job = org.bulk.jobs.get(job_id)
        if job is None:
            return _salesforce_error(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return _salesforce_error(400, "INVALIDJOBSTATE", f"job {job_id} is {job.state}")
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
        except ValueError:
            return _salesforce_error(400, "INVALID_LOCATOR", f"invalid locator {locator!r}")
        size = max_records or org.bulk.result_set
        first = job.start + offset
        last = min(job.end, first + size)
        org.pages_served += 1
        following = last - job.start
        headers = {
            **self._usage(),
            "Sforce-NumberOfRecords": str(last - first),
            "Sforce-Locator": (
                base64.b64encode(str(following).encode()).decode() if last < job.end else "null"
            ),
        }
        return StreamingResponse(
            self._csv(job, first, last), media_type="text/csv", headers=headers
        )

    def _csv(self, job: BulkJob, first: int, last: int) -> Iterator[str]:
        """A result set written a thousand rows at a time, the last record first."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(job.fields)
        for count, i in enumerate(range(last - 1, first - 1, -1), 1):
            record = salesforce_record(self.org, job.sobject, i)
            writer.writerow([_csv_value(record, name) for name in job.fields])
            if count % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def _usage(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.org.api_calls}/{self.org.api_limit}"}


_REST_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def _csv_value(record: dict[str, Any], name: str) -> str:
    """A field as a bulk result's CSV writes it: null empty, booleans in lower case,
    times in UTC with a Z, a parent's field through its relationship."""
    value: Any = record.get(name)
    if "." in name:
        parent, _, field = name.partition(".")
        holder = record.get(parent)
        value = holder.get(field) if isinstance(holder, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # The REST form's +0000 as a Z (checked on the few values that end so).
        if value.endswith("+0000") and _REST_TIME.match(value):
            return value[:-5] + "Z"
        return value
    return str(value)


def add_bulk_routes(app: FastAPI, org: FakeOrg, salesforce: SalesforceQueries) -> None:
    bulk = _Bulk(org, salesforce)

    @app.post("/services/data/{version}/jobs/query")
    async def create_query_job(version: str, request: Request) -> Response:
        refusal = salesforce.refusal(request)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            return _salesforce_error(400, "JSON_PARSER_ERROR", "the body is not JSON")
        return bulk.create_job(body)

    @app.get("/services/data/{version}/jobs/query/{job_id}")
    async def query_job(version: str, job_id: str, request: Request) -> Response:
        return salesforce.refusal(request) or bulk.job(job_id)

    @app.get("/services/data/{version}/jobs/query/{job_id}/results")
    async def query_job_results(
        version: str,
        job_id: str,
        request: Request,
        locator: str | None = None,
        max_records: Annotated[int | None, Query(alias="maxRecords")] = None,
    ) -> Response:
        return salesforce.refusal(request) or bulk.results(job_id, locator, max_records)
