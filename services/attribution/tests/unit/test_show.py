"""`revops-attribution show` renders the API's answers (served here by a mock transport)."""

import httpx
from rich.console import Console

from revops.attribution.show import show_lead, show_opportunity, show_pipeline

CREDIT = {
    m: 0.5
    for m in (
        "first_touch",
        "lead_creation",
        "u_shaped",
        "w_shaped",
        "full_path",
        "linear",
        "last_touch",
        "time_decay",
    )
}
ANSWERS = {
    "/leads": {
        "email": "jane@acme.example",
        "lead_source": "Inbound",
        "first_touchpoint": "Content Download",
        "first_touch_at": "2026-04-01T14:00:00Z",
        "original_source": "PAID_SEARCH",
        "original_source_detail": "google",
        "first_url": None,
        "first_referrer": None,
        "account_id": "001A",
        "touches": [
            {
                "touch_id": "t1",
                "kind": "form",
                "form_id": "f",
                "form_type": "ebook",
                "campaign_id": "cmp-ebook",
                "page_url": None,
                "touched_at": "2026-04-01T14:00:00Z",
            }
        ],
    },
    "/opportunities/006A/attribution": {
        "opportunity_id": "006A",
        "account_id": "001A",
        "opportunity_source": "SDR Created",
        "lead_source": "Inbound",
        "source_rule": "outbound_contact_60d",
        "reason": "Contact bob@acme.example (SDR Created) was created 30 days before ...",
        "source_email": "bob@acme.example",
        "converted_lead_email": "jane@acme.example",
        "first_touchpoint": "Content Download",
        "created_at": "2026-05-12T14:00:00Z",
        "primary_campaign_id": "cmp-demo",
        "campaigns": [
            {
                "campaign_id": "cmp-demo",
                "email": "jane@acme.example",
                "touch_id": "t2",
                "touched_at": "2026-05-11T14:00:00Z",
                "positions": ["LC", "OC"],
                "credit": CREDIT,
            }
        ],
        "credit_by_campaign": {},
    },
    "/reports/pipeline-by-source": {
        "from": None,
        "to": None,
        "qualified_only": False,
        "opportunities": 1,
        "amount": "50000.00",
        "by_opportunity_source": [{"key": "SDR Created", "opportunities": 1, "amount": "50000.00"}],
        "by_first_touchpoint": [],
        "by_campaign": {
            "w_shaped": [
                {
                    "campaign_id": "cmp-demo",
                    "opportunities": 1,
                    "credited_opportunities": 1.0,
                    "credited_amount": "50000.00",
                }
            ]
        },
    },
}


def client() -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        body = ANSWERS.get(request.url.path)
        return httpx.Response(200, json=body) if body else httpx.Response(404, json={})

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://attribution")


def test_show_prints_a_lead_an_opportunity_and_the_pipeline() -> None:
    console = Console(record=True, width=160)
    with client() as c:
        show_lead(console, c, "jane@acme.example")
        show_opportunity(console, c, "006A")
        show_pipeline(console, c)
    text = console.export_text()
    assert "Lead Source Inbound" in text and "PAID_SEARCH (google)" in text
    assert "cmp-ebook" in text
    assert "Opportunity Source SDR Created by rule outbound_contact_60d" in text
    assert "50.0%" in text and "LC,OC" in text
    assert "SDR Created" in text and "50000.00" in text


def test_show_says_what_is_not_known_yet() -> None:
    console = Console(record=True, width=160)
    with client() as c:
        show_opportunity(console, c, "006NOPE")
    assert "not known to attribution (yet)" in console.export_text()
