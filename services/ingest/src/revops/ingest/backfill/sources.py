"""What each CRM lists, page by page, and how a listed record becomes events.

A *unit* is one listing with its own checkpoint: a Salesforce sObject, a HubSpot object
type. Salesforce is read in SystemModstamp order, so its checkpoint is the stamp of the
last record published: a resumed or later run asks for the records stamped at or after
it (those of that very second again: the same events, skipped downstream). HubSpot lists
by id with an ``after`` cursor, which is the checkpoint; a finished listing starts over
on the next run (HubSpot's list has no "changed since"). A finished Salesforce listing
keeps its stamp: the next run reads only what changed since. A large Salesforce listing
is read through a Bulk API 2.0 query job instead (``bulk``), whose checkpoint is the job
and its next result set until it finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from revops.events.catalogue import Envelope
from revops.events.crm import SalesforceAuth
from revops.ingest.backfill.bulk import (
    BulkPosition,
    BulkQuery,
    MalformedResults,
    read_checkpoint,
)
from revops.ingest.backfill.calls import ApiCaller, Sleep
from revops.ingest.domain import hubspot, salesforce
from revops.ingest.domain import values as v

# What a user names on the command line -> each CRM's listings.
OBJECTS = ("accounts", "contacts", "leads", "opportunities", "activities")
DEFAULT_OBJECTS = ("accounts", "contacts", "opportunities", "activities")


class MalformedPage(Exception):
    """A page that is not what the API documents: the listing cannot go on from it."""


@dataclass(frozen=True)
class Page:
    records: list[Any]
    total: int | None  # records the whole listing holds, when the CRM says
    checkpoint: str | None  # where a later run resumes after this page (None: the start)
    last: bool  # the listing's last page


class Source(Protocol):
    crm: str

    def units(self, objects: Sequence[str]) -> list[str]: ...

    def pages(
        self, unit: str, checkpoint: str | None, since: datetime | None
    ) -> AsyncIterator[Page]: ...

    def events(
        self, unit: str, record: Any, index: int, received_at: datetime
    ) -> list[Envelope]: ...

    def is_current(self, record: Any, since: datetime | None) -> bool: ...


# --- Salesforce --------------------------------------------------------------------------------

_SALESFORCE_UNITS = {
    "accounts": ("Account",),
    "contacts": ("Contact",),
    "leads": ("Lead",),
    "opportunities": ("Opportunity", "OpportunityHistory"),
    "activities": ("Task", "Event"),
}
_STAMPS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")
_FIELDS = {
    "Account": ("Id", "Name", "Website", "OwnerId", "BillingCountry", *_STAMPS),
    "Contact": (
        "Id",
        "Email",
        "FirstName",
        "LastName",
        "AccountId",
        "OwnerId",
        "MailingCountry",
        "LeadSource",
        "CreatedById",
        *_STAMPS,
    ),
    "Lead": (
        "Id",
        "Email",
        "FirstName",
        "LastName",
        "Company",
        "Country",
        "LeadSource",
        "Status",
        "OwnerId",
        "IsConverted",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "ConvertedDate",
        "CreatedById",
        *_STAMPS,
    ),
    "Opportunity": (
        "Id",
        "AccountId",
        "Name",
        "StageName",
        "Amount",
        "CloseDate",
        "OwnerId",
        "Type",
        "ForecastCategoryName",
        "LeadSource",
        "IsClosed",
        "IsWon",
        "CreatedById",
        "ContactId",
        "CampaignId",
        *_STAMPS,
    ),
    "OpportunityHistory": (
        "Id",
        "OpportunityId",
        "Opportunity.AccountId",
        "StageName",
        "CreatedDate",
        "SystemModstamp",
    ),
    "Task": (
        "Id",
        "Subject",
        "TaskSubtype",
        "Type",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
        "ActivityDate",
        "CreatedDate",
        "SystemModstamp",
    ),
    "Event": (
        "Id",
        "Subject",
        "Type",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
        "ActivityDate",
        "CreatedDate",
        "SystemModstamp",
    ),
}


def salesforce_fields(sobject: str, custom: salesforce.CustomFields) -> list[str]:
    """The fields a query of the sObject selects: the ones the normaliser reads, with the
    org's custom fields where it reads them (an empty setting: not read)."""
    extra: tuple[str, ...] = ()
    match sobject:
        case "Account":
            extra = (custom.region, custom.users, custom.plan, custom.iacv)
        case "Contact" | "Lead":
            extra = (custom.consultant, custom.region)
        case "Opportunity":
            extra = (custom.contract_end,)
    return [*_FIELDS[sobject], *(f for f in extra if f)]


def soql_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def salesforce_query(
    sobject: str,
    fields: Sequence[str],
    *,
    after: datetime | None,
    created_after: datetime | None = None,
) -> str:
    conditions = []
    if after is not None:
        conditions.append(f"SystemModstamp >= {soql_time(after)}")
    if created_after is not None:
        conditions.append(f"CreatedDate >= {soql_time(created_after)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {', '.join(fields)} FROM {sobject}{where} ORDER BY SystemModstamp, Id"


@dataclass(frozen=True)
class BulkChoice:
    """When a listing is read through Bulk API 2.0 rather than REST pages: ``api`` auto
    (a listing of more than ``over`` records), bulk (every listing) or rest (none)."""

    api: Literal["auto", "rest", "bulk"] = "auto"
    over: int = 50_000
    page_size: int = 2000  # records published (and acknowledged) together
    result_set_size: int = 50_000  # records per result set (maxRecords)
    max_wait_s: float = 3600  # for a job to complete


class SalesforceSource:
    crm = "salesforce"

    def __init__(
        self,
        caller: ApiCaller,
        auth: SalesforceAuth,
        *,
        api_version: str,
        custom: salesforce.CustomFields,
        activity_days: int,
        now: datetime,
        bulk: BulkChoice | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._caller = caller
        self._auth = auth
        self._version = api_version
        self._custom = custom
        self._activity_days = activity_days
        self._now = now
        self._bulk = bulk or BulkChoice(api="rest")
        self._sleep = sleep
        self.org_id: str | None = None
        self.through_bulk: set[str] = set()  # the listings this run read through Bulk API 2.0

    def units(self, objects: Sequence[str]) -> list[str]:
        return [unit for name in objects for unit in _SALESFORCE_UNITS[name]]

    async def pages(
        self, unit: str, checkpoint: str | None, since: datetime | None
    ) -> AsyncIterator[Page]:
        base = await self._auth.sign_in(self._caller.client)
        stamp, position = read_checkpoint(checkpoint)
        after = max((t for t in (since, _stamp(stamp)) if t is not None), default=None)
        soql = self._query(unit, after)
        if position is not None and self._bulk.api != "rest":
            pages = self._bulk_pages(base, unit, soql, stamp, position)
        elif self._bulk.api == "bulk":
            pages = self._bulk_pages(base, unit, soql, stamp, None)
        else:
            first = await self._caller.get_json(
                f"{base}/services/data/{self._version}/query", {"q": soql}
            )
            if self._bulk.api == "auto" and _size(first) > self._bulk.over:
                # The first page says how large the listing is: too large for pages of
                # 2,000, it is read through a bulk job instead (that page is not used).
                pages = self._bulk_pages(base, unit, soql, stamp, None)
            else:
                pages = self._rest_pages(base, first, stamp)
        async for page in pages:
            yield page

    def _query(self, unit: str, after: datetime | None) -> str:
        created_after = None
        if unit in ("Task", "Event"):
            created_after = self._now - timedelta(days=self._activity_days)
        return salesforce_query(
            unit, salesforce_fields(unit, self._custom), after=after, created_after=created_after
        )

    async def _rest_pages(
        self, base: str, body: Any, checkpoint: str | None
    ) -> AsyncIterator[Page]:
        total: int | None = None
        while True:
            records, total, next_url = _salesforce_page(body, total)
            last_stamp = _last_stamp(records) or checkpoint
            # Finished, the stamp stays: the next run asks only for what changed since.
            yield Page(records, total, last_stamp, last=next_url is None)
            if next_url is None:
                return
            checkpoint = last_stamp
            body = await self._caller.get_json(f"{base}{next_url}")

    async def _bulk_pages(
        self,
        base: str,
        unit: str,
        soql: str,
        stamp: str | None,
        position: BulkPosition | None,
    ) -> AsyncIterator[Page]:
        self.through_bulk.add(unit)
        choice = self._bulk
        job = BulkQuery(
            self._caller,
            base,
            api_version=self._version,
            page_size=choice.page_size,
            result_set_size=choice.result_set_size,
            max_wait_s=choice.max_wait_s,
            sleep=self._sleep,
        )
        if position is None or not await job.still_kept(position):
            # Unordered results: only the bulk query's own start is safe to start over from.
            start = stamp if position is None else position.after
            position = await job.start(bulk_query(soql), start)
            # Kept at once: a run stopped while the job works goes on with the same job.
            yield Page([], None, position.encode(), last=False)
        await job.wait_until_complete(unit, position)
        try:
            async for page in job.pages(unit, position):
                yield Page(page.records, job.total, page.checkpoint, page.last)
        except MalformedResults as exc:
            raise MalformedPage(f"{unit}: {exc}") from None

    def events(self, unit: str, record: Any, index: int, received_at: datetime) -> list[Envelope]:
        return salesforce.listed_record_events(
            unit,
            record,
            org_id=self.org_id,
            received_at=received_at,
            index=index,
            custom=self._custom,
        )

    def is_current(self, record: Any, since: datetime | None) -> bool:
        return True  # the query asked only for those


def bulk_query(soql: str) -> str:
    """A bulk query without its ORDER BY, which would turn off Salesforce's chunking of
    large objects (the results come in no order either way)."""
    return soql.split(" ORDER BY ")[0]


def _size(body: Any) -> int:
    size = body.get("totalSize") if isinstance(body, dict) else None
    return size if isinstance(size, int) else 0


def _stamp(checkpoint: str | None) -> datetime | None:
    return None if not checkpoint else v.iso_datetime(checkpoint, "checkpoint", None)


def _salesforce_page(body: Any, total: int | None) -> tuple[list[Any], int | None, str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise MalformedPage(f"a query page without a records list: {str(body)[:120]}")
    next_url = body.get("nextRecordsUrl")
    if body.get("done") is False and not isinstance(next_url, str):
        raise MalformedPage("a query page that is not done has no nextRecordsUrl")
    size = body.get("totalSize")
    return body["records"], size if isinstance(size, int) else total, next_url or None


def _last_stamp(records: list[Any]) -> str | None:
    for record in reversed(records):
        if isinstance(record, dict) and isinstance(record.get("SystemModstamp"), str):
            return str(record["SystemModstamp"])
    return None


# --- HubSpot -----------------------------------------------------------------------------------

_HUBSPOT_UNITS = {
    "accounts": ("companies",),
    "contacts": ("contacts",),
    "leads": (),  # HubSpot's leads are its contacts
    "opportunities": ("deals",),
    "activities": (),  # engagements have no webhook event to match: not read
}
_PROPERTIES = {
    "companies": ("name", "domain", "hubspot_owner_id", "country"),
    "contacts": (
        "email",
        "firstname",
        "lastname",
        "company",
        "country",
        "hs_lead_status",
        "hubspot_owner_id",
        "associatedcompanyid",
        "is_consultant",
    ),
    "deals": (
        "dealname",
        "dealstage",
        "amount",
        "closedate",
        "pipeline",
        "hubspot_owner_id",
        "dealtype",
        "hs_forecast_category",
    ),
}


class HubSpotSource:
    crm = "hubspot"

    def __init__(
        self, caller: ApiCaller, *, company: hubspot.CompanyProperties, page_size: int = 100
    ) -> None:
        self._caller = caller
        self._company = company
        self._page_size = page_size

    def units(self, objects: Sequence[str]) -> list[str]:
        return [unit for name in objects for unit in _HUBSPOT_UNITS[name]]

    def properties(self, unit: str) -> list[str]:
        names = list(_PROPERTIES[unit])
        if unit == "companies":
            c = self._company
            names += [p for p in (c.users, c.plan, c.iacv) if p]
        return names

    async def pages(
        self, unit: str, checkpoint: str | None, since: datetime | None
    ) -> AsyncIterator[Page]:
        params = {
            "limit": str(self._page_size),
            "properties": ",".join(self.properties(unit)),
            "archived": "false",
        }
        if unit == "deals":
            params["propertiesWithHistory"] = "dealstage"
            params["associations"] = "companies"
        after = checkpoint
        while True:
            query = {**params, **({"after": after} if after else {})}
            body = await self._caller.get_json(f"/crm/v3/objects/{unit}", query)
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise MalformedPage(f"a list page without results: {str(body)[:120]}")
            paging = body.get("paging")
            after = None
            if isinstance(paging, dict) and isinstance(paging.get("next"), dict):
                after = v.text(paging["next"].get("after"), "paging.next.after", None)
            yield Page(body["results"], None, after, last=after is None)
            if after is None:
                return

    def events(self, unit: str, record: Any, index: int, received_at: datetime) -> list[Envelope]:
        return hubspot.object_events(
            unit, record, received_at=received_at, index=index, company=self._company
        )

    def is_current(self, record: Any, since: datetime | None) -> bool:
        """HubSpot's list cannot filter on a time: ``--since`` drops older records here."""
        if since is None or not isinstance(record, dict):
            return True
        try:
            return v.iso_datetime(record.get("updatedAt"), "updatedAt", None) >= since
        except Exception:
            return True  # let the normaliser say what is wrong with it
