"""The roster from where teams keep it: a CSV file, Salesforce Users, HubSpot owners.
Pure: each source's row -> the rep's fields as the router's reps API takes them, and
what to send to make the router's rep match (a create, the fields that differ, nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from revops.events.crm import salesforce_id18
from revops.ingest.domain import values as v
from revops.ingest.domain.errors import MalformedEvent

REP_COLUMNS = (
    "id",
    "name",
    "email",
    "role",
    "region",
    "certified",
    "consultant",
    "active",
    "paused",
    "out_of_office",
    "weight",
    "daily_cap",
    "paired_sdr_id",
    "salesforce_user_id",
    "hubspot_owner_id",
)
ROLES = ("SDR", "AE")
REGIONS = ("AMER", "EMEA", "APAC")
_BOOLEANS = ("certified", "consultant", "active", "paused", "out_of_office")
_WHOLE = ("weight", "daily_cap")


class RosterError(ValueError):
    """A row that cannot be a rep: says which row and which field."""


@dataclass(frozen=True)
class UserFields:
    """API names of the Salesforce User fields a rep is read from (empty: not read)."""

    role: str = "Sales_Role__c"
    region: str = "Region__c"
    certified: str = "SDR_Certified__c"
    consultant: str = "Is_Consultant__c"

    def names(self) -> list[str]:
        return [n for n in (self.role, self.region, self.certified, self.consultant) if n]


def rep_from_csv(row: Mapping[str, str | None], line: int) -> dict[str, Any]:
    """A CSV row (columns as ``REP_COLUMNS``; an empty cell sets nothing)."""
    unknown = sorted(set(row) - set(REP_COLUMNS) - {""})
    if unknown:
        raise RosterError(f"line {line}: unknown column(s) {', '.join(unknown)}")
    rep: dict[str, Any] = {}
    for name, raw in row.items():
        value = (raw or "").strip()
        if not value or not name:
            continue
        try:
            rep[name] = _cell(name, value)
        except MalformedEvent as exc:
            raise RosterError(f"line {line}: {exc}") from None
    if "id" not in rep:
        raise RosterError(f"line {line}: id is required")
    return rep


def _cell(name: str, value: str) -> Any:
    if name in _BOOLEANS:
        return v.boolean(value, name, None)
    if name in _WHOLE:
        amount = v.money(value, name, None)
        if amount != amount.to_integral_value() or amount < 0:
            raise MalformedEvent(name, f"expected a whole number, got {value!r}")
        return int(amount)
    if name == "role":
        return _one_of(name, value.upper(), ROLES)
    if name == "region":
        return _one_of(name, value.upper(), REGIONS)
    if name == "salesforce_user_id":
        return salesforce_id18(value)
    return value


def _one_of(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise MalformedEvent(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def rep_from_salesforce_user(user: Any, fields: UserFields, index: int) -> dict[str, Any] | None:
    """A Salesforce User -> a rep with the user's id as its id and Salesforce user id;
    None for a user whose role field names no rep role (not in sales)."""
    if not isinstance(user, dict):
        raise RosterError(f"user {index}: not a JSON object")
    try:
        user_id = salesforce_id18(v.required_text(user.get("Id"), "Id", index))
        role = (
            (v.text(user.get(fields.role), fields.role, index) or "").upper() if fields.role else ""
        )
        if role not in ROLES:
            return None
        rep: dict[str, Any] = {
            "id": user_id,
            "salesforce_user_id": user_id,
            "role": role,
            "name": v.text(user.get("Name"), "Name", index) or "",
            "active": v.boolean(user.get("IsActive", True), "IsActive", index),
        }
        email = v.email(user.get("Email"), "Email", index)
        if email:
            rep["email"] = email
        region = v.text(user.get(fields.region), fields.region, index) if fields.region else None
        if region:
            rep["region"] = _one_of(fields.region, region.upper(), REGIONS)
        for setting, name in ((fields.certified, "certified"), (fields.consultant, "consultant")):
            if setting and user.get(setting) not in (None, ""):
                rep[name] = v.boolean(user.get(setting), setting, index)
    except MalformedEvent as exc:
        raise RosterError(f"user {user.get('Id')}: {exc}") from None
    return rep


def hubspot_owner_ids(
    owners: Sequence[Any], reps: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """Each rep's HubSpot owner id, matched on email: rep id -> owner id, and the
    owners that match no rep (as ``id email``)."""
    by_email = {str(r["email"]).lower(): str(r["id"]) for r in reps if r.get("email")}
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    for owner in owners:
        if not isinstance(owner, dict) or owner.get("archived"):
            continue
        email = str(owner.get("email") or "").lower()
        rep_id = by_email.get(email)
        if rep_id is None:
            unmatched.append(f"{owner.get('id')} {email or '(no email)'}")
        else:
            matched[rep_id] = str(owner.get("id"))
    return matched, unmatched


def rep_change(
    current: Mapping[str, Any] | None, desired: Mapping[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """What to send the reps API: ("create", the rep), ("update", the fields that
    differ), or None when the rep is already so (a repeated import changes nothing)."""
    if current is None:
        return "create", dict(desired)
    differ = {k: val for k, val in desired.items() if k != "id" and current.get(k) != val}
    return ("update", differ) if differ else None


def rep_to_csv(rep: Mapping[str, Any]) -> dict[str, str]:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {name: cell(rep.get(name)) for name in REP_COLUMNS}
