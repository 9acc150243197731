"""The demo `make up` runs: real, signed webhooks into ingest, then what each service made
of them, read back through their APIs and printed for a person.

The story: Acme is a customer account owned by AE Alex (paired with SDR Sam). Jane from
Acme asks for a demo, Luca from Globex downloads an ebook (routed by the southern-europe
territory), Priya signs up for the cloud product, Jo downloads the ebook from a personal
address and is matched to Acme by the company she gave. Jane's lead is converted into
an opportunity that moves through the stages to Closed Won. Each run uses fresh people
and records, so it can be run again and again.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from revops.events.senders import (
    hubspot_v3_headers,
    outbound_message,
    relay_headers,
    standard_webhook_headers,
)

INGEST = os.environ.get("INGEST_URL", "http://127.0.0.1:8000")
ROUTER = os.environ.get("ROUTER_URL", "http://127.0.0.1:8001")
ATTRIBUTION = os.environ.get("ATTRIBUTION_URL", "http://127.0.0.1:8002")
RENEWALS = os.environ.get("RENEWALS_URL", "http://127.0.0.1:8003")
CONSOLE = os.environ.get("CONSOLE_URL", "http://127.0.0.1:8004")
TOKEN = {"Authorization": f"Bearer {os.environ.get('API_TOKEN', 'dev-admin-token')}"}


def current_secret(variable: str, development_default: str) -> str:
    """The secret ingest checks first: the first of the JSON list in ``variable`` (as
    ingest reads it, e.g. from the .env of a compose stack), else the development one."""
    raw = os.environ.get(variable)
    return str(json.loads(raw)[0]) if raw else development_default


HUBSPOT_SECRET = current_secret("HUBSPOT_CLIENT_SECRETS", "dev-hubspot-secret")
RELAY_SECRET = current_secret("SALESFORCE_EVENTS_SECRETS", "dev-salesforce-events-secret")
SIGNUP_SECRET = current_secret(  # base64("revops-dev-signup-secret")
    "PRODUCT_WEBHOOK_SECRETS", "whsec_cmV2b3BzLWRldi1zaWdudXAtc2VjcmV0"
)
ORG_ID = "00D000000000001AAA"

RUN = uuid.uuid4().hex[:6]
SAM, SOFIA, ALEX = "005SDR0SAM", "005SDR0SOFIA", "005AE00ALEX"
ACME = f"001ACME{RUN}"
OPP = f"006JANE{RUN}"
LEAD = f"00QJANE{RUN}"
JANE = f"jane.{RUN}@acme-demo.com"
LUCA = f"luca.{RUN}@globex-demo.it"
PRIYA = f"priya.{RUN}@initech-demo.in"
# Writes from personal mail: matched to Acme by the company she gave.
JO = f"jo.{RUN}@gmail.com"

failures: list[str] = []


def title(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m")


def line(text: str) -> None:
    print(f"   {text}")


def send(label: str, url: str, body: bytes, headers: dict[str, str]) -> None:
    response = httpx.post(url, content=body, headers=headers, timeout=10)
    ok = 200 <= response.status_code < 300
    line(f"{'->' if ok else '!!'} {label}: {response.status_code}")
    if not ok:
        failures.append(f"{label}: {response.status_code} {response.text[:300]}")


def wait_for(label: str, fetch: Callable[[], Any], timeout_s: float = 30) -> Any:
    """Poll until ``fetch`` returns something truthy (events take a moment to flow)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = fetch()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.3)
    failures.append(f"{label}: nothing after {timeout_s:.0f}s")
    line(f"!! {label}: nothing after {timeout_s:.0f}s")
    return None


def get(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base}{path}", params=params, headers=TOKEN, timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def setup_reps() -> None:
    title("Router: the sales team (POST /reps)")
    reps = [
        {
            "id": SAM,
            "name": "Sam (SDR, AMER)",
            "email": "sam@example.com",
            "role": "SDR",
            "region": "AMER",
            "certified": True,
        },
        {
            "id": SOFIA,
            "name": "Sofia (SDR, EMEA)",
            "email": "sofia@example.com",
            "role": "SDR",
            "region": "EMEA",
            "certified": True,
        },
        {
            "id": ALEX,
            "name": "Alex (AE, AMER)",
            "email": "alex@example.com",
            "role": "AE",
            "region": "AMER",
            "certified": True,
            "paired_sdr_id": SAM,
        },
    ]
    for rep in reps:
        response = httpx.post(f"{ROUTER}/reps", json=rep, headers=TOKEN, timeout=5)
        if response.status_code == 409:  # created by an earlier run
            fields = {k: v for k, v in rep.items() if k != "id"}
            response = httpx.patch(
                f"{ROUTER}/reps/{rep['id']}", json=fields, headers=TOKEN, timeout=5
            )
        status = "ok" if response.is_success else f"!! {response.status_code} {response.text[:200]}"
        line(f"{rep['name']:<20} {status}")
        if not response.is_success:
            failures.append(f"rep {rep['id']}: {response.status_code}")
    # A change is published to the roster topic and the router applies it a moment later:
    # the leads below are routed only once the team is there.
    for rep in reps:
        wait_for(f"rep {rep['id']} applied", partial(rep_as_sent, rep))
    line("the router has applied the team")


# Southern Europe has a territory of its own (EMEA's queue); each run sets it again, as a
# new version. Leads from countries it does not list go to their account's region, else
# AMER.
POLICY = """\
territories:
  - name: southern-europe
    region: EMEA
    match: {countries: [IT, ES, PT, GR]}
  - name: north-america
    region: AMER
    match: {countries: [US, CA]}
  - name: india
    region: APAC
    match: {countries: [IN]}
fallback_region: AMER
"""


def set_policy() -> None:
    title("Router: the routing policy, territories (PUT /routing-policy)")
    response = httpx.put(
        f"{ROUTER}/routing-policy",
        json={"document": POLICY, "changed_by": "demo"},
        headers=TOKEN,
        timeout=5,
    )
    if not response.is_success:
        line(f"!! {response.status_code} {response.text[:200]}")
        failures.append(f"routing policy: {response.status_code}")
        return
    answer = response.json()
    # Applied before any lead sent after this answer, like a rep's change.
    line(f"version {answer['version_after']}: {', '.join(answer['territories'])}")


def rep_as_sent(rep: dict[str, Any]) -> bool:
    stored = get(ROUTER, f"/reps/{rep['id']}")
    return stored is not None and all(stored[k] == v for k, v in rep.items())


def send_webhooks(now: datetime) -> None:
    title("Ingest: signed webhooks from Salesforce, HubSpot and the product")
    sf_url = f"{INGEST}/webhooks/salesforce/outbound"
    created = (now - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    account = outbound_message(
        ORG_ID,
        [
            (
                f"04l{RUN}ACC01",
                "Account",
                {
                    "Id": ACME,
                    "Name": "Acme Corp",
                    "Website": "https://www.acme-demo.com",
                    "OwnerId": ALEX,
                    "BillingCountry": "United States",
                    "CreatedDate": created,
                    "LastModifiedDate": created,
                    "NumberOfEmployees": "1200",
                },
            )
        ],
    )
    send(
        "Salesforce outbound message: Account Acme (owner Alex)",
        sf_url,
        account,
        {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
    )

    forms = [
        (JANE, "Jane", "Acme Corp", "United States", "demo_request", "spring_launch"),
        (LUCA, "Luca", "Globex", "IT", "ebook", "ebook_q2"),
        (JO, "Jo", "ACME Corporation", "US", "ebook", "ebook_q2"),
    ]
    for email, first, company, country, form_type, campaign in forms:
        url = f"{INGEST}/webhooks/hubspot/forms?form_type={form_type}&campaign={campaign}"
        body = json.dumps(
            {
                "submittedAt": str(int(now.timestamp() * 1000)),
                "fields": [
                    {"objectTypeId": "0-1", "name": "email", "value": email},
                    {"objectTypeId": "0-1", "name": "firstname", "value": first},
                    {"objectTypeId": "0-1", "name": "company", "value": company},
                    {"objectTypeId": "0-1", "name": "country", "value": country},
                ],
                "context": {
                    "pageUri": f"https://www.example.com/{form_type}?utm_source=google&utm_medium=cpc",
                    "referrer": "https://www.google.com/",
                },
            }
        ).encode()
        send(
            f"HubSpot form ({form_type}) from {email}",
            url,
            body,
            hubspot_v3_headers(HUBSPOT_SECRET, url, body),
        )

    signup = json.dumps(
        {
            "type": "user.signed_up",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {
                "user_id": f"usr_{RUN}",
                "email": PRIYA,
                "signup_type": "cloud",
                "country": "India",
                "company": "Initech",
                "first_source_url": "https://www.example.com/pricing",
                "anonymous_user_id": f"anon_{RUN}",
            },
        }
    ).encode()
    send(
        f"Product sign-up (cloud) from {PRIYA}",
        f"{INGEST}/webhooks/product/signups",
        signup,
        standard_webhook_headers(SIGNUP_SECRET, f"msg_{RUN}", signup),
    )


def convert_and_win(now: datetime) -> None:
    title("Salesforce: Jane's lead converted, her opportunity moves to Closed Won")
    stamp = int(now.timestamp() * 1000) + 60_000
    conversion = json.dumps(
        [
            {
                "data": {
                    "schema": "demo",
                    "payload": {
                        "ChangeEventHeader": {
                            "entityName": "Lead",
                            "recordIds": [LEAD],
                            "changeType": "UPDATE",
                            "changeOrigin": "",
                            "transactionKey": f"tx-{RUN}",
                            "sequenceNumber": 1,
                            "commitTimestamp": stamp,
                            "commitNumber": 1,
                            "commitUser": SAM,
                            "changedFields": [
                                "IsConverted",
                                "ConvertedAccountId",
                                "ConvertedContactId",
                                "ConvertedOpportunityId",
                                "Status",
                            ],
                        },
                        "Email": JANE,
                        "Status": "Qualified",
                        "IsConverted": True,
                        "ConvertedDate": now.date().isoformat(),
                        "ConvertedAccountId": ACME,
                        "ConvertedContactId": f"003JANE{RUN}",
                        "ConvertedOpportunityId": OPP,
                    },
                    "event": {"replayId": 1},
                },
                "channel": "/data/LeadChangeEvent",
            }
        ]
    ).encode()
    send(
        "Salesforce change event: Lead converted",
        f"{INGEST}/webhooks/salesforce/events",
        conversion,
        relay_headers(RELAY_SECRET, conversion),
    )

    sf_url = f"{INGEST}/webhooks/salesforce/outbound"
    close = now.date() + timedelta(days=30)
    for step, (stage, minutes) in enumerate(
        [("1 - Interest", 2), ("2 - Qualified", 3), ("Closed Won", 4)], start=1
    ):
        at = (now + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        won = stage == "Closed Won"
        body = outbound_message(
            ORG_ID,
            [
                (
                    f"04l{RUN}OPP{step:02d}",
                    "Opportunity",
                    {
                        "Id": OPP,
                        "AccountId": ACME,
                        "Name": "Acme - Platform",
                        "StageName": stage,
                        "Amount": "120000",
                        "CloseDate": close.isoformat(),
                        "OwnerId": ALEX,
                        "Type": "New Business",
                        "ForecastCategory": "Closed" if won else "Pipeline",
                        "IsClosed": str(won).lower(),
                        "IsWon": str(won).lower(),
                        "CreatedDate": (now + timedelta(minutes=1)).strftime(
                            "%Y-%m-%dT%H:%M:%S.000Z"
                        ),
                        "LastModifiedDate": at,
                    },
                )
            ],
        )
        send(
            f"Salesforce outbound message: Opportunity at {stage}",
            sf_url,
            body,
            {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        )


def show_router() -> None:
    title("Router: who works each lead (GET /leads?email=...)")
    for email in (JANE, LUCA, PRIYA, JO):
        lead = wait_for(
            f"router lead {email}", lambda e=email: _first(get(ROUTER, "/leads", email=e))
        )
        if lead:
            owner = lead.get("owner_id") or "nobody"
            line(
                f"{email:<36} -> {owner:<13} rule={lead.get('rule')}, queue={lead.get('queue')}, "
                f"priority={lead.get('priority')}"
            )
            line(f"{'':<36}    {lead.get('reason')}")
            territory = lead.get("territory") or "none (account region or fallback)"
            line(f"{'':<36}    territory {territory}, policy v{lead.get('policy_version')}")
            if lead.get("account_id"):
                score = f" (score {lead['match_score']})" if lead.get("match_score") else ""
                line(
                    f"{'':<36}    account {lead['account_id']} matched by "
                    f"{lead.get('match')}{score}"
                )


def show_attribution() -> None:
    title(
        "Attribution: where they came from (GET /leads?email=..., /opportunities/{id}/attribution)"
    )
    for email in (JANE, LUCA, PRIYA):
        lead = wait_for(
            f"attribution lead {email}", lambda e=email: get(ATTRIBUTION, "/leads", email=e)
        )
        if lead:
            line(
                f"{email:<36} lead source={lead.get('lead_source')}, first touchpoint="
                f"{lead.get('first_touchpoint')}, original source={lead.get('original_source')}"
            )
    opp = wait_for(
        "opportunity attribution", lambda: get(ATTRIBUTION, f"/opportunities/{OPP}/attribution")
    )
    if opp:
        line(
            f"opportunity {OPP}: source={opp.get('opportunity_source')} "
            f"({opp.get('source_rule')}), primary campaign={opp.get('primary_campaign_id')}"
        )
        line(f"   {opp.get('reason')}")
        for campaign in opp.get("campaigns", []):
            credit = campaign.get("credit", {})
            line(
                f"   campaign {campaign.get('campaign_id')}: "
                + ", ".join(f"{k} {float(v):.2f}" for k, v in sorted(credit.items()))
            )


def show_renewals() -> None:
    title("Renewals: stage history and the renewal of the Closed Won (GET /opportunities/{id}...)")
    opp = wait_for(
        "renewals opportunity", lambda: _closed_won(get(RENEWALS, f"/opportunities/{OPP}"))
    )
    if opp:
        history = " -> ".join(h.get("stage", "?") for h in opp.get("history", []))
        line(f"{OPP}: {history}; NBM {opp.get('nbm_date')}, qualified {opp.get('qualified_date')}")
    renewal = wait_for("renewal", lambda: get(RENEWALS, f"/opportunities/{OPP}/renewal"))
    if renewal:
        line(
            f"renewal {renewal.get('id')}: {renewal.get('amount')} "
            f"due {renewal.get('close_date')}, owner {renewal.get('owner_id')}, "
            f"status {renewal.get('status')}"
        )
    snapshots = get(RENEWALS, "/forecast/snapshots")
    if snapshots:
        line(f"next weekly forecast snapshot: {snapshots.get('next_scheduled_at')}")


def _first(page: Any) -> Any:
    items = page.get("items") if isinstance(page, dict) else None
    return items[0] if items else None


def _closed_won(opp: Any) -> Any:
    return opp if opp and str(opp.get("stage", "")).lower().startswith("closed won") else None


def main() -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"revops demo, run {RUN}")
    setup_reps()
    set_policy()
    send_webhooks(now)
    show_router()
    convert_and_win(now)
    show_attribution()
    show_renewals()
    if failures:
        print("\n\033[31mSome steps did not work:\033[0m")
        for failure in failures:
            print(f" - {failure}")
        print("Logs: .state/logs/<service>.log; state: make status")
        return 1
    print(
        "\n\033[32mAll four services answered.\033[0m Try: uv run revops lag; "
        "open http://127.0.0.1:8001/docs; make down to stop."
    )
    print(
        f"The console: {CONSOLE} (sign in with the admin token, API_TOKEN, "
        "dev-admin-token unless you set your own)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
