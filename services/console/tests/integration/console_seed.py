"""What the console's tests show: the demo's story (reps, three leads, a won opportunity
and its renewal), plus open opportunities in three forecast categories that change
during the last weeks, their accounts with a size (so a tier), and a forecast snapshot
at the end of each of those weeks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from revops.events.senders import outbound_message

ROOT = Path(__file__).resolve().parents[4]
DEMO = ROOT / "deploy" / "local" / "demo.py"
ADMIN = {"Authorization": "Bearer dev-admin-token"}
ORG_ID = "00D000000000001AAA"
SNAPSHOT_WEEKS = 4

# (id suffix, amount, category four weeks ago, category and amount since a week ago)
OPEN_DEALS = [
    ("A", 50_000, "Pipeline", "Best Case", 60_000),
    ("B", 80_000, "Best Case", "Commit", 80_000),
    ("C", 30_000, "Pipeline", "Pipeline", 45_000),
    ("D", 120_000, "Commit", "Commit", 120_000),
]
# Each open deal's account: the seats it pays for (its iACV is a hundred per seat).
ACCOUNT_USERS = {"A": 40, "B": 250, "C": 900, "D": 5_000}


def run_demo(urls: dict[str, str]) -> str:
    """The demo against the test's services; its output (it prints the console's address)."""
    env = {
        **os.environ,
        "INGEST_URL": urls["ingest"],
        "ROUTER_URL": urls["router"],
        "ATTRIBUTION_URL": urls["attribution"],
        "RENEWALS_URL": urls["renewals"],
        "CONSOLE_URL": urls["console"],
    }
    done = subprocess.run(
        [sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _send_salesforce(ingest: str, records: list[tuple[str, str, dict[str, str]]]) -> None:
    response = httpx.post(
        f"{ingest}/webhooks/salesforce/outbound",
        content=outbound_message(ORG_ID, records),
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def send_open_deals(ingest: str, now: datetime) -> list[str]:
    run = uuid.uuid4().hex[:6]
    ids = []
    for suffix, amount, category, later_category, later_amount in OPEN_DEALS:
        opportunity = f"006OPEN{suffix}{run}"
        ids.append(opportunity)
        created = now - timedelta(weeks=SNAPSHOT_WEEKS, days=1)
        users = ACCOUNT_USERS[suffix]
        account = {
            "Id": f"001OPEN{suffix}{run}",
            "Name": f"Account {suffix}",
            "OwnerId": "005AE00ALEX",
            "Users__c": str(users),
            "Plan__c": "Premium",
            "iACV__c": str(users * 100),
            "CreatedDate": _stamp(created),
            "LastModifiedDate": _stamp(created),
        }
        _send_salesforce(ingest, [(f"04l{run}{suffix}AC", "Account", account)])
        changed = now - timedelta(days=3)
        versions = [
            (created, "2 - Qualified", category, amount),
            (changed, "3 - Proposal", later_category, later_amount),
        ]
        for step, (at, stage, forecast, value) in enumerate(versions):
            fields = {
                "Id": opportunity,
                "AccountId": account["Id"],
                "Name": f"Deal {suffix}",
                "StageName": stage,
                "Amount": str(value),
                "CloseDate": (now + timedelta(days=45)).date().isoformat(),
                "OwnerId": "005AE00ALEX",
                "Type": "New Business",
                "ForecastCategory": forecast,
                "IsClosed": "false",
                "IsWon": "false",
                "CreatedDate": _stamp(created),
                "LastModifiedDate": _stamp(at),
            }
            _send_salesforce(ingest, [(f"04l{run}{suffix}{step:02d}", "Opportunity", fields)])
    return ids


def take_snapshots(renewals: str, now: datetime) -> list[dict[str, object]]:
    """One snapshot at the end of each of the last weeks, the latest now."""
    taken = []
    for weeks_ago in range(SNAPSHOT_WEEKS - 1, -1, -1):
        as_of = now - timedelta(weeks=weeks_ago)
        response = httpx.post(
            f"{renewals}/forecast/snapshots",
            json={"as_of": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")},
            headers=ADMIN,
            timeout=30,
        )
        assert response.status_code == 201, response.text
        taken.append(response.json())
    return taken


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
