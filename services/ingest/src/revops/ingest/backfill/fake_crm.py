"""A local server that answers like Salesforce's and HubSpot's APIs, for the backfill's
tests, its benchmark and the demo: never a real CRM.

Salesforce: the OAuth token endpoint (JWT bearer, checked against the app's public key,
and client credentials), REST ``query`` with ``nextRecordsUrl`` pages (2,000 records by
default), ``Sforce-Limit-Info`` on every answer, ``INVALID_SESSION_ID`` (401) once a
session is expired, ``INVALID_FIELD`` (400) for a field the object lacks; Bulk API 2.0
query jobs (``fake_bulk``). HubSpot: CRM v3
objects (companies, contacts, deals with ``propertiesWithHistory`` and associations) and
owners, ``after`` cursors, 100 results a page at most, the ``X-HubSpot-RateLimit-*``
headers and a 429 past the per-10-second limit. Either can be told to answer 429 with
``Retry-After``, or to fail from some page on (an interrupted run).

Records are computed from their index when asked for, so an org of 400,000 records
costs no memory: the data is generated, never stored or committed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from revops.ingest.backfill.fake_bulk import BulkJobs, add_bulk_routes
from revops.ingest.backfill.fake_records import (
    BASE_TIME,
    COUNTRIES,
    REGIONS,
    salesforce_count,
    salesforce_record,
)
from revops.ingest.backfill.fake_records import iso as iso
from revops.ingest.backfill.fake_records import sfid as sfid

HUBSPOT_STAGES = ("appointmentscheduled", "qualifiedtobuy", "contractsent", "closedwon")


def _json(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, headers=headers, media_type="application/json"
    )


def parse_iso(text: str) -> datetime:
    text = text.strip()
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text)


@dataclass
class FakeOrg:
    """What the fake CRMs hold: counts of each kind, and the faults to show."""

    accounts: int = 20
    contacts_per_account: int = 3
    leads: int = 10
    opportunities_per_account: int = 1
    activities: int = 10
    users: int = 4
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # (object, index) of records whose values are broken (an email that is none, ...).
    broken: set[tuple[str, int]] = field(default_factory=set)
    page_size: int = 2000  # Salesforce's default batch
    hubspot_page_max: int = 100
    # Credentials.
    client_id: str = "fake-consumer-key"
    client_secret: str = "fake-consumer-secret"
    username: str = "integration@example.com"
    public_key: str | None = None  # PEM of the connected app's certificate key
    hubspot_token: str = "pat-na1-fake"
    # Faults.
    throttle: int = 0  # the next calls answered 429 with Retry-After
    retry_after: str = "1"
    fail_after_pages: int | None = None  # data pages served before each one fails (500)
    hubspot_ten_second_limit: int = 1_000_000
    api_limit: int = 1_000_000
    # What happened.
    sessions: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    api_calls: int = 0
    pages_served: int = 0
    hubspot_calls: list[float] = field(default_factory=list)
    # Owner write-backs received: (object, id) -> the owner id written.
    owners_written: dict[tuple[str, str], str] = field(default_factory=dict)
    cursors: dict[str, tuple[str, list[str], int, int]] = field(default_factory=dict)
    bulk: BulkJobs = field(default_factory=BulkJobs)  # Bulk API 2.0 query jobs
    url: str = ""

    def expire_sessions(self) -> None:
        self.sessions.clear()

    # --- the records -------------------------------------------------------------------------

    @property
    def contacts(self) -> int:
        return self.accounts * self.contacts_per_account

    @property
    def opportunities(self) -> int:
        return self.accounts * self.opportunities_per_account

    def stamp(self, index: int) -> datetime:
        """A record's last change: one second apart, in index order."""
        return BASE_TIME + timedelta(seconds=index)

    def activity_time(self, index: int) -> datetime:
        """Activities: the last one an hour ago, each an hour before the next."""
        return self.now - timedelta(hours=self.activities - index)

    def domain(self, account: int) -> str:
        return f"account{account}.example.com"

    def owner(self, index: int) -> int:
        return index % self.users + 1

    def broken_value(self, kind: str, index: int, value: Any, bad: Any) -> Any:
        return bad if (kind, index) in self.broken else value


# --- Salesforce --------------------------------------------------------------------------------


_SOQL = re.compile(
    r"^SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>.+?))?$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"(\w+)\s*(>=|>)\s*(\S+)")


def _salesforce_error(status: int, code: str, message: str) -> Response:
    return _json([{"message": message, "errorCode": code}], status_code=status)


class _Salesforce:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def token(self, form: dict[str, str]) -> Response:
        org = self.org
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            refusal = self._check_assertion(form.get("assertion", ""))
        elif grant == "client_credentials":
            ok = (form.get("client_id"), form.get("client_secret")) == (
                org.client_id,
                org.client_secret,
            )
            refusal = None if ok else ("invalid_client", "invalid client credentials")
        else:
            refusal = ("unsupported_grant_type", "grant type not supported")
        if refusal is not None:
            return _json({"error": refusal[0], "error_description": refusal[1]}, status_code=400)
        org.tokens_issued += 1
        token = f"00DFAKE!session{org.tokens_issued}"
        org.sessions.add(token)
        return _json(
            {
                "access_token": token,
                "instance_url": org.url,
                "id": f"{org.url}/id/00DFAKE/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "scope": "api",
            }
        )

    def _check_assertion(self, assertion: str) -> tuple[str, str] | None:
        org = self.org
        if org.public_key is None:
            return ("invalid_grant", "no certificate for this app")
        try:
            claims = jwt.decode(
                assertion,
                org.public_key,
                algorithms=["RS256"],
                audience=[org.url, "https://login.salesforce.com", "https://test.salesforce.com"],
            )
        except jwt.InvalidTokenError as exc:
            return ("invalid_grant", f"invalid assertion: {exc}")
        if claims.get("iss") != org.client_id:
            return ("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != org.username:
            return ("invalid_grant", "user hasn't approved this consumer")
        return None

    def refusal(self, request: Request) -> Response | None:
        org = self.org
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in org.sessions:
            return _salesforce_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        org.api_calls += 1
        if org.throttle > 0:
            org.throttle -= 1
            return Response(
                status_code=429,
                headers={"Retry-After": org.retry_after},
                content=b'[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}]',
            )
        if org.fail_after_pages is not None and org.pages_served >= org.fail_after_pages:
            return _salesforce_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred")
        return None

    def parse(self, soql: str) -> Response | tuple[str, list[str], int, int]:
        """The query's object, fields and range of indexes, or why it is refused."""
        match = _SOQL.match(soql.strip())
        if match is None:
            return _salesforce_error(400, "MALFORMED_QUERY", f"unexpected query: {soql[:80]}")
        sobject = match["object"]
        try:
            salesforce_count(self.org, sobject)
        except KeyError:
            return _salesforce_error(400, "INVALID_TYPE", f"sObject type '{sobject}' unknown")
        fields = [f.strip() for f in match["fields"].split(",")]
        known = salesforce_record(self.org, sobject, 1)
        for name in fields:
            head = name.split(".")[0]
            if head not in known:
                return _salesforce_error(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'"
                )
        start, end = self._range(sobject, match["where"] or "")
        return sobject, fields, start, end

    def query(self, soql: str) -> Response:
        parsed = self.parse(soql)
        if isinstance(parsed, Response):
            return parsed
        cursor = f"01gFAKE{len(self.org.cursors) + 1:08d}"
        self.org.cursors[cursor] = parsed
        return self.page(cursor, 0)

    def _range(self, sobject: str, where: str) -> tuple[int, int]:
        """The indexes (1-based, end exclusive) the WHERE keeps: every field compared is
        a time that grows with the index."""
        org = self.org
        count = salesforce_count(org, sobject)
        start = 1
        for name, op, value in _CONDITION.findall(where):
            bound = parse_iso(value)

            def moment(i: int, name: str = name) -> datetime:
                return parse_iso(salesforce_record(org, sobject, i)[name])

            indexes = range(1, count + 1)
            find = bisect.bisect_left if op == ">=" else bisect.bisect_right
            start = max(start, find(indexes, bound, key=moment) + 1)
        return start, count + 1

    def page(self, cursor: str, offset: int) -> Response:
        org = self.org
        sobject, fields, start, end = org.cursors[cursor]
        first = start + offset
        last = min(end, first + org.page_size)
        records = [self._select(sobject, fields, i) for i in range(first, last)]
        org.pages_served += 1
        body: dict[str, Any] = {
            "totalSize": end - start,
            "done": last >= end,
            "records": records,
        }
        if last < end:
            version = "v61.0"
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor}-{last - start}"
        return _json(
            body, headers={"Sforce-Limit-Info": f"api-usage={org.api_calls}/{org.api_limit}"}
        )

    def _select(self, sobject: str, fields: list[str], i: int) -> dict[str, Any]:
        record = salesforce_record(self.org, sobject, i)
        selected: dict[str, Any] = {"attributes": {"type": sobject}}
        for name in fields:
            head = name.split(".")[0]
            selected[head] = record[head]
        return selected


# --- HubSpot -----------------------------------------------------------------------------------


def _hubspot_object(org: FakeOrg, kind: str, i: int) -> dict[str, Any]:
    stamp = org.stamp(i).isoformat().replace("+00:00", "Z")
    base: dict[str, Any] = {
        "id": str(i),
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
    }
    match kind:
        case "companies":
            properties = {
                "name": f"Company {i}",
                "domain": f"company{i}.example.net",
                "hubspot_owner_id": str(org.owner(i) + 100),
                "country": COUNTRIES[i % len(COUNTRIES)],
                "users": str(org.broken_value("companies", i, 10 + i % 900, "many")),
                "plan": "Enterprise" if i % 3 == 0 else "Team",
                "iacv": str(1000 * (i % 200 + 1)),
                "createdate": stamp,
                "hs_lastmodifieddate": stamp,
            }
        case "contacts":
            company = (i - 1) // org.contacts_per_account + 1
            properties = {
                "email": org.broken_value(
                    "contacts", i, f"person{i}@company{company}.example.net", "nobody"
                ),
                "firstname": "Person",
                "lastname": str(i),
                "company": f"Company {company}",
                "country": COUNTRIES[company % len(COUNTRIES)],
                "hubspot_owner_id": str(org.owner(i) + 100),
                "associatedcompanyid": str(company),
                "hs_lead_status": "OPEN",
                "createdate": stamp,
                "lastmodifieddate": stamp,
            }
        case "deals":
            company = (i - 1) // org.opportunities_per_account + 1
            properties = {
                "dealname": f"Deal {i}",
                "dealstage": HUBSPOT_STAGES[i % len(HUBSPOT_STAGES)],
                "amount": str(5000 + i),
                "closedate": (BASE_TIME + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
                "pipeline": "default",
                "hubspot_owner_id": str(org.owner(i) + 100),
                "dealtype": "newbusiness",
                "createdate": stamp,
                "hs_lastmodifieddate": stamp,
            }
            base["associations"] = {
                "companies": {"results": [{"id": str(company), "type": "deal_to_company"}]}
            }
            earlier = (org.stamp(i) - timedelta(days=7)).isoformat().replace("+00:00", "Z")
            base["propertiesWithHistory"] = {
                "dealstage": [
                    {"value": properties["dealstage"], "timestamp": stamp, "sourceType": "CRM_UI"},
                    {"value": "appointmentscheduled", "timestamp": earlier, "sourceType": "CRM_UI"},
                ]
            }
        case _:
            raise KeyError(kind)
    base["properties"] = properties
    return base


def _hubspot_count(org: FakeOrg, kind: str) -> int:
    return {
        "companies": org.accounts,
        "contacts": org.contacts,
        "deals": org.opportunities,
        "owners": org.users,
    }[kind]


def _hubspot_owner(org: FakeOrg, i: int) -> dict[str, Any]:
    stamp = org.stamp(i).isoformat().replace("+00:00", "Z")
    return {
        "id": str(i + 100),
        "email": f"rep{i}@seller.example.com",
        "firstName": "Rep",
        "lastName": str(i),
        "userId": 9000 + i,
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": False,
        "teams": [{"id": "1", "name": REGIONS[i % len(REGIONS)], "primary": True}],
    }


class _HubSpot:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def refusal(self, request: Request) -> Response | None:
        org = self.org
        if request.headers.get("authorization") != f"Bearer {org.hubspot_token}":
            return _json(
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
                status_code=401,
            )
        now = time.monotonic()
        org.hubspot_calls = [t for t in org.hubspot_calls if now - t < 10] + [now]
        if org.throttle > 0 or len(org.hubspot_calls) > org.hubspot_ten_second_limit:
            org.throttle = max(0, org.throttle - 1)
            return _json(
                {
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "policyName": "TEN_SECONDLY_ROLLING",
                },
                status_code=429,
                headers={"Retry-After": org.retry_after},
            )
        if org.fail_after_pages is not None and org.pages_served >= org.fail_after_pages:
            return _json(
                {"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"},
                status_code=500,
            )
        return None

    def page(
        self, kind: str, after: str | None, limit: int, make: Callable[[int], dict[str, Any]]
    ) -> Response:
        org = self.org
        count = _hubspot_count(org, kind)
        first = int(after) + 1 if after else 1
        last = min(count + 1, first + min(limit, org.hubspot_page_max))
        body: dict[str, Any] = {"results": [make(i) for i in range(first, last)]}
        if last <= count:
            body["paging"] = {
                "next": {
                    "after": str(last - 1),
                    "link": f"{org.url}/crm/v3/objects/{kind}?after={last - 1}",
                }
            }
        org.pages_served += 1
        remaining = max(0, org.hubspot_ten_second_limit - len(org.hubspot_calls))
        return _json(
            body,
            headers={
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": str(org.hubspot_ten_second_limit),
                "X-HubSpot-RateLimit-Remaining": str(remaining),
            },
        )

    def objects(self, kind: str, query: dict[str, str]) -> Response:
        org = self.org
        wanted = [p for p in query.get("properties", "").split(",") if p]
        with_history = [p for p in query.get("propertiesWithHistory", "").split(",") if p]
        associations = [a for a in query.get("associations", "").split(",") if a]

        def make(i: int) -> dict[str, Any]:
            obj = _hubspot_object(org, kind, i)
            if wanted:
                obj["properties"] = {k: obj["properties"].get(k) for k in wanted}
            if "propertiesWithHistory" in obj:
                history = obj.pop("propertiesWithHistory")
                if with_history:
                    obj["propertiesWithHistory"] = {k: history.get(k, []) for k in with_history}
            if "associations" in obj and not associations:
                del obj["associations"]
            return obj

        return self.page(kind, query.get("after"), int(query.get("limit", "10")), make)


def build_fake_crm(org: FakeOrg) -> FastAPI:
    app = FastAPI(title="fake CRM")
    salesforce = _Salesforce(org)
    hubspot = _HubSpot(org)

    @app.post("/services/oauth2/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        return salesforce.token({k: str(v) for k, v in form.items()})

    @app.get("/services/data/{version}/query")
    async def query(version: str, q: str, request: Request) -> Response:
        return salesforce.refusal(request) or salesforce.query(q)

    @app.get("/services/data/{version}/query/{locator}")
    async def more(version: str, locator: str, request: Request) -> Response:
        refusal = salesforce.refusal(request)
        if refusal is not None:
            return refusal
        cursor, _, offset = locator.partition("-")
        if cursor not in org.cursors:
            return _salesforce_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return salesforce.page(cursor, int(offset or 0))

    add_bulk_routes(app, org, salesforce)

    @app.get("/crm/v3/objects/{kind}")
    async def objects(kind: str, request: Request) -> Response:
        if kind not in ("companies", "contacts", "deals"):
            return _json({"status": "error", "message": "unknown"}, status_code=400)
        return hubspot.refusal(request) or hubspot.objects(kind, dict(request.query_params))

    @app.patch("/crm/v3/objects/{kind}/{object_id}")
    async def hubspot_update(kind: str, object_id: str, request: Request) -> Response:
        refusal = hubspot.refusal(request)
        if refusal is not None:
            return refusal
        properties = (await request.json()).get("properties", {})
        if "hubspot_owner_id" in properties:
            org.owners_written[(kind, object_id)] = str(properties["hubspot_owner_id"])
        return _json({"id": object_id, "properties": properties, "archived": False})

    @app.patch("/services/data/{version}/sobjects/{sobject}/{record_id}")
    async def salesforce_update(
        version: str, sobject: str, record_id: str, request: Request
    ) -> Response:
        refusal = salesforce.refusal(request)
        if refusal is not None:
            return refusal
        fields = await request.json()
        if "OwnerId" in fields:
            org.owners_written[(sobject, record_id)] = str(fields["OwnerId"])
        return Response(status_code=204)

    @app.get("/crm/v3/owners")
    async def owners(request: Request) -> Response:
        query = dict(request.query_params)
        return hubspot.refusal(request) or hubspot.page(
            "owners", query.get("after"), int(query.get("limit", "100")), _owner(org)
        )

    return app


def _owner(org: FakeOrg) -> Callable[[int], dict[str, Any]]:
    return lambda i: _hubspot_owner(org, i)


def all_salesforce_ids(org: FakeOrg, sobject: str) -> Iterator[str]:
    prefix = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q"}[sobject]
    for i in range(1, salesforce_count(org, sobject) + 1):
        yield sfid(prefix, i)


@contextlib.asynccontextmanager
async def serving(org: FakeOrg, port: int = 0) -> AsyncIterator[FakeOrg]:
    """The fake CRMs on 127.0.0.1 (a free port unless given), in this event loop;
    ``org.url`` is where they answer."""
    server = uvicorn.Server(
        uvicorn.Config(
            build_fake_crm(org),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:  # uvicorn offers no started event to await
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError(
                f"the fake CRM did not start: {task.exception() if task.done() else 'timeout'}"
            )
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    org.url = f"http://127.0.0.1:{bound}"
    try:
        yield org
    finally:
        server.should_exit = True
        await task


def main() -> None:
    """``python -m revops.ingest.backfill.fake_crm [PORT] [ACCOUNTS] [CONTACTS_PER]``:
    serve a fake org (client credentials fake-consumer-key / fake-consumer-secret,
    HubSpot token pat-na1-fake) until interrupted."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8090
    accounts = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    per_account = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    org = FakeOrg(
        accounts=accounts,
        contacts_per_account=per_account,
        leads=accounts // 5,
        activities=accounts,
    )
    org.url = f"http://127.0.0.1:{port}"
    uvicorn.run(build_fake_crm(org), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
