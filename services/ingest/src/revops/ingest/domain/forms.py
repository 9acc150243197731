"""HubSpot form submissions -> ``form.submitted``.

Two bodies arrive here:
- a Forms API v3 submission (``fields[] {name, value}``, ``context``, ``submittedAt``),
  as a relay or our site forwards it;
- a workflow "Send a webhook" action's contact: the contact as HubSpot's object APIs
  return it (``properties`` with ``{"value": ...}`` objects (v1) or plain values (v3),
  v1's ``form-submissions``), or a customised flat body of properties.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from revops.events.catalogue import (
    FormSubmitted,
    FormSubmittedEvent,
    SourceRef,
    derived_event_id,
)
from revops.ingest.domain import values as v
from revops.ingest.domain.errors import MalformedEvent

DEFAULT_FIELDS: Mapping[str, str] = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "company": "company",
    "country": "country",
    # What routing territories may match on besides the country: HubSpot's contact
    # properties `state` and `numemployees` (a range such as "25-50" or "1000+"), and a
    # property of the team's own for the segment.
    "state": "state",
    "employees": "numemployees",
    "segment": "segment",
    "is_consultant": "is_consultant",
    "utm_campaign": "utm_campaign",
}


@dataclass(frozen=True)
class FormRules:
    """What the target URL and the configuration say about a submission."""

    form_type: str | None = None  # the `form_type` query parameter
    campaign: str | None = None  # the `campaign` query parameter
    form_id: str | None = None  # the `form_id` query parameter
    types_by_form_id: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))


@dataclass(frozen=True)
class _Submission:
    values: dict[str, Any]  # field name -> value
    form_id: str | None
    occurred_at: datetime | None
    occurred_raw: str | None  # the sender's own time, for the stable id
    page_url: str | None
    referrer: str | None
    first_page_url: str | None
    first_referrer: str | None
    sfdc_campaign: str | None
    contact_id: str | None
    portal_id: str | None
    conversion_id: str | None


def parse_submission(
    body: Any, rules: FormRules, *, raw_body: bytes, received_at: datetime
) -> FormSubmittedEvent:
    if not isinstance(body, dict):
        raise MalformedEvent("body", "expected a JSON object", 0)
    sub = _forms_api(body) if "fields" in body else _workflow_contact(body)
    names = {**DEFAULT_FIELDS, **rules.fields}

    def value(name: str) -> Any:
        return sub.values.get(names[name])

    email_field = names["email"]
    email = v.email(value("email"), email_field, 0)
    if email is None:
        raise MalformedEvent(email_field, "is required", 0)
    form_id = rules.form_id or sub.form_id
    form_type = rules.form_type or (rules.types_by_form_id.get(form_id) if form_id else None)
    campaign = (
        rules.campaign
        or v.text(value("utm_campaign"), names["utm_campaign"], 0)
        or sub.sfdc_campaign
    )
    consultant = value("is_consultant")
    is_consultant = (
        False if consultant in (None, "") else v.boolean(consultant, names["is_consultant"], 0)
    )
    occurred_at = sub.occurred_at or received_at
    # The sender's ids and time make the id; a body without them is identified by its
    # bytes, so a resent identical body is still the same event.
    if sub.conversion_id:
        stable = derived_event_id("hubspot-form", sub.conversion_id)
    elif sub.occurred_raw:
        stable = derived_event_id("hubspot-form", form_id or "", email, sub.occurred_raw)
    else:
        stable = derived_event_id("hubspot-form", v.body_digest(raw_body))
    ref = (
        SourceRef(
            system="hubspot",
            object_type="contact",
            object_id=sub.contact_id,
            tenant_id=sub.portal_id,
        )
        if sub.contact_id
        else None
    )
    return v.build_event(
        FormSubmittedEvent,
        id=f"hubspot:{stable}",
        source="hubspot",
        occurred_at=occurred_at,
        received_at=received_at,
        index=0,
        payload=lambda: FormSubmitted(
            email=email,
            form_id=form_id,
            form_type=form_type,
            campaign_id=campaign,
            first_name=v.text(value("first_name"), names["first_name"], 0),
            last_name=v.text(value("last_name"), names["last_name"], 0),
            company=v.text(value("company"), names["company"], 0),
            country=v.text(value("country"), names["country"], 0),
            state=v.text(value("state"), names["state"], 0, max_length=100),
            employees=employees(value("employees"), names["employees"]),
            segment=v.text(value("segment"), names["segment"], 0, max_length=100),
            is_consultant=is_consultant,
            page_url=sub.page_url,
            referrer=sub.referrer,
            source_ref=ref,
            first_page_url=sub.first_page_url,
            first_referrer=sub.first_referrer,
        ),
    )


_EMPLOYEES = re.compile(r"^\s*(\d{1,9})\s*(?:(?:-|to)\s*\d{1,9}|\+)?\s*$")


def employees(value: Any, field: str) -> int | None:
    """A company size as a number: "250", 250, or the lower bound of a range such as
    HubSpot's "25-50" or "1000+" (a territory's band takes its lower end)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:
        return value
    found = _EMPLOYEES.match(value) if isinstance(value, str) else None
    if found is None:
        raise MalformedEvent(
            field, f"expected a number of employees or a range (25-50, 1000+), got {value!r}", 0
        )
    return int(found.group(1))


def _forms_api(body: dict[str, Any]) -> _Submission:
    fields = body["fields"]
    if not isinstance(fields, list):
        raise MalformedEvent("fields", "expected a list of {name, value}", 0)
    values: dict[str, Any] = {}
    for position, item in enumerate(fields):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise MalformedEvent(f"fields[{position}]", "expected {name, value}", 0)
        values.setdefault(item["name"], item.get("value"))
    context = body.get("context") or {}
    if not isinstance(context, dict):
        raise MalformedEvent("context", "expected a JSON object", 0)
    submitted = body.get("submittedAt")
    return _Submission(
        values=values,
        form_id=v.text(v.pick(body, "formGuid", "formId"), "formGuid", 0),
        occurred_at=None if submitted is None else v.epoch_ms(submitted, "submittedAt", 0),
        occurred_raw=None if submitted is None else str(submitted),
        page_url=v.text(context.get("pageUri"), "context.pageUri", 0, max_length=4000),
        referrer=v.text(context.get("referrer"), "context.referrer", 0, max_length=4000),
        # The Forms API knows the form's page only.
        first_page_url=None,
        first_referrer=None,
        sfdc_campaign=v.text(context.get("sfdcCampaignId"), "context.sfdcCampaignId", 0),
        contact_id=None,
        portal_id=v.text(body.get("portalId"), "portalId", 0),
        conversion_id=None,
    )


def _workflow_contact(body: dict[str, Any]) -> _Submission:
    properties = body.get("properties", body)
    if not isinstance(properties, dict):
        raise MalformedEvent("properties", "expected a JSON object", 0)
    # v1 contacts: {"email": {"value": "..."}}; v3 objects and custom bodies: plain values.
    values = {
        name: (item.get("value") if isinstance(item, dict) else item)
        for name, item in properties.items()
    }
    latest = _latest_form_submission(body.get("form-submissions"))
    occurred_raw: Any = None
    occurred_field = ""
    page_url = v.text(
        values.get("hs_analytics_last_url"), "hs_analytics_last_url", 0, max_length=4000
    )
    form_id = None
    conversion_id = None
    if latest is not None:
        occurred_raw, occurred_field = latest.get("timestamp"), "form-submissions.timestamp"
        form_id = v.text(latest.get("form-id"), "form-submissions.form-id", 0)
        conversion_id = v.text(latest.get("conversion-id"), "form-submissions.conversion-id", 0)
        page_url = (
            v.text(latest.get("page-url"), "form-submissions.page-url", 0, max_length=4000)
            or page_url
        )
    else:
        for name in ("recent_conversion_date", "lastmodifieddate", "hs_lastmodifieddate"):
            if values.get(name) not in (None, ""):
                occurred_raw, occurred_field = values[name], name
                break
    return _Submission(
        values=values,
        form_id=form_id or v.text(values.get("recent_conversion_event_id"), "form_id", 0),
        occurred_at=(
            None if occurred_raw is None else v.any_datetime(occurred_raw, occurred_field, 0)
        ),
        occurred_raw=None if occurred_raw is None else str(occurred_raw),
        page_url=page_url,
        referrer=_long_text(values, "hs_analytics_first_referrer"),
        first_page_url=_long_text(values, "hs_analytics_first_url"),
        first_referrer=_long_text(values, "hs_analytics_first_referrer"),
        sfdc_campaign=None,
        contact_id=v.text(v.pick(body, "vid", "canonical-vid", "id", "hs_object_id"), "vid", 0),
        portal_id=v.text(body.get("portal-id"), "portal-id", 0),
        conversion_id=conversion_id,
    )


def _long_text(values: dict[str, Any], name: str) -> str | None:
    return v.text(values.get(name), name, 0, max_length=4000)


def _latest_form_submission(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, list) or not value:
        return None
    submissions = [s for s in value if isinstance(s, dict)]
    if not submissions:
        return None
    return max(submissions, key=_submission_time)


def _submission_time(submission: dict[str, Any]) -> int:
    timestamp = submission.get("timestamp")
    return timestamp if isinstance(timestamp, int) else 0
