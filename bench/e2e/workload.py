"""The webhooks the benchmarks send: a realistic mix, every one signed the way its real
sender signs it, every one with ids known in advance (the event ids ingest will derive, the
lead's email), so what each service stored can be matched to what was sent.

A cycle of 10 requests carries 14 events:
  4 HubSpot form submissions (1 event each: form.submitted -> a lead for the router)
  2 product sign-ups (Standard Webhooks; 1 event each: signup.created -> a lead)
  1 HubSpot Webhooks API batch of 5 notifications (a contact created and 4 properties)
  1 Salesforce outbound message, Account (account.changed)
  1 Salesforce outbound message, Task on that account (activity.logged)
  1 Salesforce outbound message, an Opportunity's stage change (opportunity.changed)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from revops.events.catalogue import derived_event_id
from revops.events.senders import (
    hubspot_v3_headers,
    outbound_message,
    standard_webhook_headers,
)

HUBSPOT_SECRET = "dev-hubspot-secret"
SIGNUP_SECRET = "whsec_cmV2b3BzLWRldi1zaWdudXAtc2VjcmV0"
ORG_ID = "00D000000000001AAA"
SOAP = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
CYCLE = ("form", "form", "form", "form", "signup", "signup", "batch", "account", "task", "opp")
EVENTS_PER_REQUEST = {"form": 1, "signup": 1, "batch": 5, "account": 1, "task": 1, "opp": 1}
EVENTS_PER_CYCLE = sum(EVENTS_PER_REQUEST[k] for k in CYCLE)
COUNTRIES = ("United States", "Germany", "India", "Canada", "France", "Japan", "Brazil", "IT")
FORM_TYPES = ("demo_request", "contact", "ebook", "webinar")
STAGES = ("1 - Interest", "2 - Qualified", "3 - Proposal", "Closed Won")
AES = [f"005AE{r}{n}" for r in ("AMER", "EMEA", "APAC") for n in range(2)]


@dataclass
class Request:
    n: int
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    event_ids: list[str]
    # Topic short name per event id (which services consume it).
    topics: list[str]
    email: str | None = None  # the lead the router must create (forms, sign-ups)
    extra: dict[str, str] = field(default_factory=dict)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _sf_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Workload:
    """Builds request n of a run; deterministic from (run, n), so a checker can rebuild
    the ids of anything that was sent."""

    def __init__(self, run: str, base_url: str = "") -> None:
        self.run = run
        self.base_url = base_url

    def build(self, n: int, *, now: datetime | None = None, ingest_url: str = "") -> Request:
        now = now or datetime.now(UTC)
        kind = CYCLE[n % len(CYCLE)]
        return getattr(self, f"_{kind}")(n, now, ingest_url or self.base_url)

    # --- HubSpot ------------------------------------------------------------------------------

    def _form(self, n: int, now: datetime, base: str) -> Request:
        form_type = FORM_TYPES[n % len(FORM_TYPES)]
        email = f"f{n}.{self.run}@lead{n % 97}-bench.com"
        form_id = f"form-{form_type}"
        submitted = str(_ms(now))
        path = f"/webhooks/hubspot/forms?form_type={form_type}&campaign=c{n % 5}"
        body = json.dumps(
            {
                "formGuid": form_id,
                "submittedAt": submitted,
                "fields": [
                    {"objectTypeId": "0-1", "name": "email", "value": email},
                    {"objectTypeId": "0-1", "name": "firstname", "value": f"F{n}"},
                    {"objectTypeId": "0-1", "name": "company", "value": f"Company {n % 97}"},
                    {"objectTypeId": "0-1", "name": "country", "value": COUNTRIES[n % 8]},
                ],
                "context": {
                    "pageUri": f"https://www.example.com/{form_type}?utm_source=google",
                    "referrer": "https://www.google.com/",
                },
            }
        ).encode()
        event_id = "hubspot:" + derived_event_id("hubspot-form", form_id, email, submitted)
        headers = hubspot_v3_headers(HUBSPOT_SECRET, base + path, body)
        return Request(n, "form", path, body, headers, [event_id], ["forms"], email=email)

    def _batch(self, n: int, now: datetime, base: str) -> Request:
        contact = f"9{n}"
        email = f"c{n}.{self.run}@contact-bench.com"
        at = _ms(now)
        notes = [("contact.creation", None, None)] + [
            ("contact.propertyChange", name, value)
            for name, value in (
                ("email", email),
                ("firstname", f"C{n}"),
                ("country", COUNTRIES[n % 8]),
                ("hs_lead_status", "NEW"),
            )
        ]
        batch, ids = [], []
        for i, (kind, prop, value) in enumerate(notes):
            sub, event = str(100 + i), f"{n}{i:02d}"
            item: dict[str, object] = {
                "eventId": int(event),
                "subscriptionId": int(sub),
                "portalId": 62515,
                "appId": 1,
                "occurredAt": at + i,
                "subscriptionType": kind,
                "attemptNumber": 0,
                "objectId": int(contact),
                "changeSource": "CRM",
            }
            if prop is not None:
                item["propertyName"] = prop
                item["propertyValue"] = value
            batch.append(item)
            ids.append("hubspot:" + derived_event_id("hubspot", sub, contact, event, str(at + i)))
        path = "/webhooks/hubspot"
        body = json.dumps(batch).encode()
        headers = hubspot_v3_headers(HUBSPOT_SECRET, base + path, body)
        return Request(n, "batch", path, body, headers, ids, ["people"] * len(ids))

    # --- product ------------------------------------------------------------------------------

    def _signup(self, n: int, now: datetime, base: str) -> Request:
        email = f"s{n}.{self.run}@signup{n % 89}-bench.io"
        msg = f"msg_{self.run}_{n}"
        body = json.dumps(
            {
                "type": "user.signed_up",
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {
                    "user_id": f"usr_{self.run}_{n}",
                    "email": email,
                    "signup_type": "cloud" if n % 3 else "install",
                    "country": COUNTRIES[n % 8],
                    "company": f"Signup Co {n % 89}",
                    "first_source_url": "https://www.example.com/pricing",
                    "anonymous_user_id": f"anon_{self.run}_{n}",
                },
            }
        ).encode()
        headers = standard_webhook_headers(SIGNUP_SECRET, msg, body)
        return Request(
            n,
            "signup",
            "/webhooks/product/signups",
            body,
            headers,
            [f"product:{msg}"],
            ["signups"],
            email=email,
        )

    # --- Salesforce ---------------------------------------------------------------------------

    def account_id(self, n: int) -> str:
        return f"001B{self.run}{n // len(CYCLE):07d}"

    def _outbound(
        self, n: int, kind: str, sobject: str, fields: dict[str, str], topic: str
    ) -> Request:
        notification = f"04l{self.run}{n:08d}"
        body = outbound_message(ORG_ID, [(notification, sobject, fields)])
        return Request(
            n,
            kind,
            "/webhooks/salesforce/outbound",
            body,
            dict(SOAP),
            [f"salesforce:{notification}"],
            [topic],
            extra={"record": fields["Id"]},
        )

    def _account(self, n: int, now: datetime, base: str) -> Request:
        account = self.account_id(n)
        created = _sf_time(now - timedelta(days=400))
        return self._outbound(
            n,
            "account",
            "Account",
            {
                "Id": account,
                "Name": f"Bench Account {n}",
                "Website": f"https://www.acct{n}-bench.com",
                "OwnerId": AES[n % len(AES)],
                "BillingCountry": COUNTRIES[n % 8],
                "CreatedDate": created,
                "LastModifiedDate": _sf_time(now),
                "NumberOfEmployees": "250",
            },
            "accounts",
        )

    def _task(self, n: int, now: datetime, base: str) -> Request:
        return self._outbound(
            n,
            "task",
            "Task",
            {
                "Id": f"00TB{self.run}{n:08d}",
                "WhatId": self.account_id(n),
                "OwnerId": AES[n % len(AES)],
                "Subject": "Call",
                "TaskSubtype": "Call",
                "CreatedDate": _sf_time(now),
                "LastModifiedDate": _sf_time(now),
            },
            "activities",
        )

    def _opp(self, n: int, now: datetime, base: str) -> Request:
        # Every opportunity moves through the stages: request n is stage k of opp n // 4.
        cycle = n // len(CYCLE)
        opp, step = cycle // len(STAGES), cycle % len(STAGES)
        stage = STAGES[step]
        won = stage == "Closed Won"
        account = self.account_id(opp * len(STAGES) * len(CYCLE))
        close = date.today() + timedelta(days=30)
        return self._outbound(
            n,
            "opp",
            "Opportunity",
            {
                "Id": f"006B{self.run}{opp:07d}",
                "AccountId": account,
                "Name": f"Bench opp {opp}",
                "StageName": stage,
                "Amount": "50000",
                "CloseDate": close.isoformat(),
                "OwnerId": AES[opp % len(AES)],
                "Type": "New Business",
                "ForecastCategory": "Closed" if won else "Pipeline",
                "IsClosed": str(won).lower(),
                "IsWon": str(won).lower(),
                "CreatedDate": _sf_time(now - timedelta(minutes=5)),
                "LastModifiedDate": _sf_time(now + timedelta(milliseconds=step)),
            },
            "opportunities",
        )


def resign(request: Request, base: str) -> None:
    """Fresh timestamps for a request built a while ago (HubSpot allows 5 minutes)."""
    if request.kind in ("form", "batch"):
        request.headers = hubspot_v3_headers(HUBSPOT_SECRET, base + request.path, request.body)
    elif request.kind == "signup":
        msg = request.event_ids[0].removeprefix("product:")
        request.headers = standard_webhook_headers(SIGNUP_SECRET, msg, request.body)


def now_s() -> float:
    return time.time()
