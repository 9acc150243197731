"""Form submissions (Forms API v3 bodies and workflow contacts) -> form.submitted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from revops.events.catalogue import FormSubmittedEvent
from revops.ingest.domain.errors import MalformedEvent
from revops.ingest.domain.forms import FormRules, parse_submission

NOW = datetime(2024, 6, 1, tzinfo=UTC)
SAMPLE_BYTES = (Path(__file__).parent.parent / "formats/hubspot_form_submission.json").read_bytes()
SAMPLE = json.loads(SAMPLE_BYTES)


def parse(body: Any, rules: FormRules | None = None) -> FormSubmittedEvent:
    raw = json.dumps(body).encode()
    return parse_submission(body, rules or FormRules(), raw_body=raw, received_at=NOW)


def with_fields(**values: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(SAMPLE_BYTES)
    body["fields"] = [f for f in body["fields"] if f["name"] not in values] + [
        {"objectTypeId": "0-1", "name": k, "value": v} for k, v in values.items()
    ]
    return body


def test_the_sample_forms_api_submission() -> None:
    event = parse(SAMPLE, FormRules(form_type="demo_request", form_id="f-1"))
    p = event.payload
    assert event.key == p.email == "jane.doe@example.com"
    assert (p.first_name, p.last_name, p.company) == ("Jane", "Doe", "Example Corp")
    assert p.form_type == "demo_request" and p.form_id == "f-1"
    assert p.campaign_id == "spring_launch"  # the utm_campaign field
    assert p.page_url == SAMPLE["context"]["pageUri"]
    assert p.is_consultant is False
    assert event.occurred_at == datetime(2024, 5, 31, 16, 8, 19, tzinfo=UTC)  # submittedAt
    assert event.received_at == NOW


def test_campaign_precedence() -> None:
    body = with_fields()
    body["context"]["sfdcCampaignId"] = "7015g000000AbCd"
    assert parse(body, FormRules(campaign="from-query")).payload.campaign_id == "from-query"
    assert parse(body).payload.campaign_id == "spring_launch"
    body["fields"] = [f for f in body["fields"] if f["name"] != "utm_campaign"]
    assert parse(body).payload.campaign_id == "7015g000000AbCd"
    del body["context"]["sfdcCampaignId"]
    assert parse(body).payload.campaign_id is None


def test_form_type_from_query_else_the_form_id_map() -> None:
    rules = FormRules(form_id="abc", types_by_form_id={"abc": "ebook"})
    assert parse(SAMPLE, rules).payload.form_type == "ebook"
    rules = FormRules(form_id="abc", form_type="webinar", types_by_form_id={"abc": "ebook"})
    assert parse(SAMPLE, rules).payload.form_type == "webinar"
    assert parse(SAMPLE, FormRules(form_id="zzz")).payload.form_type is None


def test_consultant_country_referrer() -> None:
    body = with_fields(is_consultant="true", country="DE")
    body["context"]["referrer"] = "https://news.ycombinator.com/"
    p = parse(body).payload
    assert p.is_consultant is True and p.country == "DE"
    assert p.referrer == "https://news.ycombinator.com/"
    assert parse(with_fields(is_consultant="false")).payload.is_consultant is False


def test_same_submission_same_id_other_submission_other_id() -> None:
    assert parse(SAMPLE).id == parse(json.loads(SAMPLE_BYTES)).id
    later = json.loads(SAMPLE_BYTES)
    later["submittedAt"] = "1717171699001"
    assert parse(later).id != parse(SAMPLE).id


def test_workflow_contact_v1_body() -> None:
    body = {
        "vid": 51234567801,
        "portal-id": 44556677,
        "properties": {
            "email": {"value": "Bob@Example.org"},
            "firstname": {"value": "Bob"},
            "country": {"value": "United Kingdom"},
            "is_consultant": {"value": "Yes"},
        },
        "form-submissions": [
            {
                "conversion-id": "c-1",
                "timestamp": 1717000000000,
                "form-id": "old",
                "page-url": "https://example.com/a",
            },
            {
                "conversion-id": "c-2",
                "timestamp": 1717171000000,
                "form-id": "f-demo",
                "page-url": "https://example.com/demo",
            },
        ],
    }
    event = parse(body, FormRules(types_by_form_id={"f-demo": "demo_request"}))
    p = event.payload
    assert p.email == "bob@example.org" and p.first_name == "Bob"
    assert p.country == "United Kingdom" and p.is_consultant is True
    assert (p.form_id, p.form_type, p.page_url) == (
        "f-demo",
        "demo_request",
        "https://example.com/demo",
    )
    assert event.occurred_at == datetime.fromtimestamp(1717171000, UTC)
    assert p.source_ref is not None and p.source_ref.object_id == "51234567801"
    assert p.source_ref.tenant_id == "44556677"


def test_workflow_contact_v3_and_flat_bodies() -> None:
    v3 = {
        "id": "901",
        "properties": {"email": "c@example.com", "lastmodifieddate": "2024-05-31T16:00:00.000Z"},
    }
    event = parse(v3, FormRules(form_type="contact"))
    assert event.payload.email == "c@example.com"
    assert event.occurred_at == datetime(2024, 5, 31, 16, tzinfo=UTC)
    flat = {"email": "d@example.com", "firstname": "Dee"}
    event = parse(flat)
    assert event.payload.first_name == "Dee"
    assert event.occurred_at == NOW  # no time of the sender's: received
    assert parse(dict(flat)).id == event.id  # ...but still a stable id (the body's)


def test_configured_field_names() -> None:
    body = with_fields(work_email="e@example.com")
    body["fields"] = [f for f in body["fields"] if f["name"] != "email"]
    event = parse(body, FormRules(fields={"email": "work_email"}))
    assert event.payload.email == "e@example.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fields": [{"name": "firstname", "value": "x"}]}, "email"),
        ({"fields": [{"name": "email", "value": "nope"}]}, "email"),
        ({"fields": "email"}, "fields"),
        ({"fields": [{"value": "x"}]}, "fields[0]"),
        ({"fields": [{"name": "email", "value": "a@b.co"}], "submittedAt": "soon"}, "submittedAt"),
        (
            {
                "fields": [
                    {"name": "email", "value": "a@b.co"},
                    {"name": "is_consultant", "value": "maybe"},
                ]
            },
            "is_consultant",
        ),
    ],
)
def test_refusals_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse(body)
    assert caught.value.field == field and caught.value.index == 0


@pytest.mark.parametrize(
    ("given", "employees"),
    [("250", 250), ("25-50", 25), ("1000+", 1000), (" 5 to 25 ", 5), ("", None), (40, 40)],
)
def test_territory_fields_state_company_size_and_segment(given: Any, employees: Any) -> None:
    body = with_fields(state="CA", segment="Enterprise")
    body["fields"].append({"objectTypeId": "0-1", "name": "numemployees", "value": given})
    p = parse(body).payload
    assert (p.state, p.employees, p.segment) == ("CA", employees, "Enterprise")


def test_a_company_size_that_is_no_number_is_refused_naming_the_field() -> None:
    with pytest.raises(MalformedEvent, match="numemployees"):
        parse(with_fields(numemployees="lots"))


def test_a_workflow_contact_carries_the_first_page_seen_apart_from_the_form_page() -> None:
    body = {
        "vid": 77,
        "properties": {
            "email": {"value": "first@example.org"},
            "hs_analytics_first_url": {"value": "https://example.com/pricing?utm_medium=cpc"},
            "hs_analytics_first_referrer": {"value": "https://www.google.com/"},
            "hs_analytics_last_url": {"value": "https://example.com/blog/last"},
        },
        "form-submissions": [
            {"timestamp": 1717171000000, "form-id": "f", "page-url": "https://example.com/demo"}
        ],
    }
    p = parse(body, FormRules()).payload
    assert p.page_url == "https://example.com/demo"  # the form's own page, as before
    assert p.first_page_url == "https://example.com/pricing?utm_medium=cpc"
    assert p.first_referrer == "https://www.google.com/"


def test_without_the_first_page_properties_nothing_is_made_up() -> None:
    body = {"vid": 78, "properties": {"email": {"value": "none@example.org"}}}
    p = parse(body, FormRules()).payload
    assert (p.first_page_url, p.first_referrer) == (None, None)
