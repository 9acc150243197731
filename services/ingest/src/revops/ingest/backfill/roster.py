"""The roster sync and CSV import: reps from Salesforce Users, HubSpot owners or a file,
sent to the router's reps API, so each change is the same ``rep.changed`` event the API
publishes for a person at the console. Only what differs is sent: a repeated sync or
import changes nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from revops.events.crm import SalesforceAuth, hubspot_client, salesforce_client
from revops.ingest.backfill.calls import ApiCaller, Sleep
from revops.ingest.backfill.sources import salesforce_query
from revops.ingest.domain.roster import (
    REP_COLUMNS,
    RosterError,
    UserFields,
    hubspot_owner_ids,
    rep_change,
    rep_from_csv,
    rep_from_salesforce_user,
    rep_to_csv,
)


@dataclass
class RosterSummary:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_reps: int = 0  # Salesforce users whose role field names no rep role
    refused: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # HubSpot owners without a rep


class RouterReps:
    """The router's reps API, with the admin token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def all(self) -> list[dict[str, Any]]:
        reps: list[dict[str, Any]] = []
        while True:
            response = await self._client.get("/reps", params={"limit": 500, "offset": len(reps)})
            response.raise_for_status()
            page = response.json()
            reps.extend(page["items"])
            if not page["items"] or len(reps) >= page["total"]:
                return reps

    async def apply(self, desired: dict[str, Any], current: dict[str, Any] | None) -> str:
        """Create or update the rep; returns created, updated or unchanged."""
        change = rep_change(current, desired)
        if change is None:
            return "unchanged"
        kind, body = change
        if kind == "create":
            response = await self._client.post("/reps", json=body)
        else:
            response = await self._client.patch(f"/reps/{desired['id']}", json=body)
        if response.status_code >= 400:
            raise RosterError(f"rep {desired['id']}: the router refused it: {_detail(response)}")
        return "created" if kind == "create" else "updated"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return f"HTTP {response.status_code}: {detail}"


async def apply_all(reps: RouterReps, desired: Iterable[dict[str, Any]]) -> RosterSummary:
    summary = RosterSummary()
    current = {r["id"]: r for r in await reps.all()}
    for rep in desired:
        try:
            outcome = await reps.apply(rep, current.get(rep["id"]))
        except RosterError as exc:
            summary.refused.append(str(exc))
            continue
        if outcome == "created":
            summary.created.append(rep["id"])
        elif outcome == "updated":
            summary.updated.append(rep["id"])
        else:
            summary.unchanged += 1
    return summary


def read_csv(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The file's reps, and a message for each row that cannot be one."""
    reps: list[dict[str, Any]] = []
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            try:
                reps.append(rep_from_csv(row, line))
            except RosterError as exc:
                problems.append(str(exc))
    return reps, problems


async def import_csv(reps: RouterReps, path: Path) -> RosterSummary:
    rows, problems = read_csv(path)
    summary = await apply_all(reps, rows)
    summary.refused[:0] = problems
    return summary


async def export_csv(reps: RouterReps, path: Path) -> int:
    everyone = await reps.all()
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(REP_COLUMNS))
        writer.writeheader()
        for rep in everyone:
            writer.writerow(rep_to_csv(rep))
    return len(everyone)


async def sync_salesforce(
    reps: RouterReps, settings: Any, fields: UserFields, sleep: Sleep
) -> RosterSummary:
    """Every Salesforce user with a rep role, as a rep whose id is the user's id."""
    auth = SalesforceAuth(settings)
    caller = ApiCaller(salesforce_client(settings, auth), "Salesforce", sleep=sleep)
    desired: list[dict[str, Any]] = []
    not_reps = 0
    problems: list[str] = []
    try:
        base = await auth.sign_in(caller.client)
        soql = salesforce_query(
            "User", ["Id", "Name", "Email", "IsActive", *fields.names()], after=None
        )
        url = f"{base}/services/data/{settings.salesforce_api_version}/query"
        body = await caller.get_json(url, {"q": soql})
        index = 0
        while True:
            for user in body.get("records", []):
                index += 1
                try:
                    rep = rep_from_salesforce_user(user, fields, index)
                except RosterError as exc:
                    problems.append(str(exc))
                    continue
                if rep is None:
                    not_reps += 1
                else:
                    desired.append(rep)
            if not body.get("nextRecordsUrl"):
                break
            body = await caller.get_json(f"{base}{body['nextRecordsUrl']}")
    finally:
        await caller.client.aclose()
    summary = await apply_all(reps, desired)
    summary.not_reps = not_reps
    summary.refused[:0] = problems
    return summary


async def sync_hubspot(reps: RouterReps, settings: Any, sleep: Sleep) -> RosterSummary:
    """Each rep's HubSpot owner id, from the owner with the rep's email."""
    caller = ApiCaller(hubspot_client(settings), "HubSpot", sleep=sleep)
    owners: list[Any] = []
    try:
        after: str | None = None
        while True:
            params = {"limit": "100", **({"after": after} if after else {})}
            body = await caller.get_json("/crm/v3/owners", params)
            owners.extend(body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
    finally:
        await caller.client.aclose()
    everyone = await reps.all()
    matched, unmatched = hubspot_owner_ids(owners, everyone)
    summary = await apply_all(
        reps, ({"id": rep_id, "hubspot_owner_id": owner} for rep_id, owner in matched.items())
    )
    summary.unmatched = unmatched
    return summary
