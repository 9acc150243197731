"""The console against the real services (processes, real Kafka and Postgres): what each
page shows is what the APIs say, admin actions reach the router, and nothing a person
types gives a 500."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
import pytest

from .console_system import System, poll

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ALERT = re.compile(r'class="flash (ok|error)" role="(?:status|alert)">([^<]*)<')


def signed_in(system: System, token: str = "dev-admin-token") -> httpx.Client:
    client = httpx.Client(base_url=system.console, timeout=30)
    form = client.get("/signin")
    csrf = CSRF.search(form.text)
    assert csrf, form.text
    answer = client.post("/signin", data={"csrf": csrf.group(1), "token": token, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client, path: str = "/routing") -> str:
    found = CSRF.search(client.get(path).text)
    assert found
    return found.group(1)


def flash_after(client: httpx.Client, answer: httpx.Response) -> tuple[str, str]:
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"])
    found = ALERT.search(page.text)
    assert found, page.text[:2000]
    return found.group(1), unescape(found.group(2))


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def test_the_demo_prints_the_consoles_address(system: System) -> None:
    assert f"The console: {system.console}" in system.demo_output


def test_every_page_needs_a_sign_in(system: System) -> None:
    for path in ("/routing", "/attribution", "/renewals", "/health"):
        answer = httpx.get(system.console + path + "?weeks=3")
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/signin?next={path}%3Fweeks%3D3"


def test_a_wrong_token_is_refused_and_next_never_leaves_the_site(system: System) -> None:
    client = httpx.Client(base_url=system.console)
    csrf = CSRF.search(client.get("/signin").text)
    assert csrf
    wrong = client.post("/signin", data={"csrf": csrf.group(1), "token": "guess"})
    assert wrong.status_code == 401
    assert "token: this is neither the read token nor the admin token" in wrong.text
    right = client.post(
        "/signin",
        data={"csrf": csrf.group(1), "token": "dev-read-token", "next": "//evil.example/x"},
    )
    assert right.status_code == 303 and right.headers["location"] == "/routing"


def test_routing_shows_recent_leads_with_rule_and_reason_newest_first(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    page = client.get("/routing")
    assert page.status_code == 200, page.text
    leads = system.api("router", "/leads", newest_first="true", limit=50)["items"]
    assert len(leads) >= 3
    created = [lead["created_at"] for lead in leads]
    assert created == sorted(created, reverse=True)
    table = page.text.split('id="recent-leads"')[1].split("</table>")[0]
    emails = re.findall(r"<td>([^<@]+@[^<]+)</td>", table)
    assert emails == [lead["email"] for lead in leads]
    for lead in leads:
        assert unescape(lead["reason"]) in unescape(table) or lead["reason"] in unescape(table)
    assert "Round robin" in table or "Account owner" in table


def test_routing_lists_the_waiting_leads_the_router_counts(system: System) -> None:
    client = signed_in(system)
    queues = system.api("router", "/queues")
    page = client.get("/routing").text
    for waiting in queues["waiting"]:
        shown = re.findall(rf'data-queue="{waiting["name"]}".*?</table>', page, re.S)
        assert shown, waiting["name"]
        ids = re.findall(r'data-lead="([^"]+)"', shown[0])
        assert ids == waiting["lead_ids"][:20]


def test_read_only_sessions_see_no_admin_form_and_cannot_post_one(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    page = client.get("/routing").text
    assert "Read only" in page
    assert "/assign" not in page and 'value="pause"' not in page
    rep = system.api("router", "/reps")["items"][0]
    answer = client.post(
        f"/routing/reps/{rep['id']}", data={"csrf": csrf_of(client), "action": "pause"}
    )
    assert answer.status_code == 403
    assert "needs the admin token" in answer.text
    assert system.api("router", f"/reps/{rep['id']}")["paused"] == rep["paused"]


def test_a_form_without_the_session_token_is_refused(system: System) -> None:
    client = signed_in(system)
    rep = system.api("router", "/reps")["items"][0]
    for csrf in (None, "forged-token-of-another-site-0123456789"):
        data = {"action": "pause", **({"csrf": csrf} if csrf else {})}
        answer = client.post(f"/routing/reps/{rep['id']}", data=data)
        assert answer.status_code == 403
        assert "Form expired" in answer.text
    assert system.api("router", f"/reps/{rep['id']}")["paused"] is False


def test_the_admin_changes_a_reps_weight_and_cap_through_the_router(system: System) -> None:
    client = signed_in(system)
    rep = "005SDR0SOFIA"
    csrf = csrf_of(client)
    answer = client.post(
        f"/routing/reps/{rep}", data={"csrf": csrf, "action": "weight", "weight": "7"}
    )
    assert flash_after(client, answer)[0] == "ok"
    poll(lambda: _rep_has(system, rep, weight=7), what="weight applied")
    answer = client.post(
        f"/routing/reps/{rep}", data={"csrf": csrf, "action": "daily_cap", "daily_cap": "12"}
    )
    assert flash_after(client, answer)[0] == "ok"
    poll(lambda: _rep_has(system, rep, daily_cap=12), what="cap applied")
    answer = client.post(
        f"/routing/reps/{rep}", data={"csrf": csrf, "action": "daily_cap", "daily_cap": ""}
    )
    assert flash_after(client, answer)[0] == "ok"
    poll(lambda: _rep_has(system, rep, daily_cap=None), what="cap removed")


def _rep_has(system: System, rep_id: str, **fields: Any) -> None:
    rep = system.api("router", f"/reps/{rep_id}")
    for name, value in fields.items():
        assert rep[name] == value, rep


def test_the_admin_assigns_a_waiting_lead(system: System) -> None:
    client = signed_in(system)
    queues = system.api("router", "/queues")
    waiting = [i for q in queues["waiting"] for i in q["lead_ids"]]
    assert waiting, "the demo leaves Priya's lead (APAC, nobody there) waiting"
    lead = waiting[0]
    answer = client.post(
        f"/routing/leads/{lead}/assign",
        data={"csrf": csrf_of(client), "owner_id": "005SDR0SAM", "reason": "covers APAC today"},
    )
    kind, text = flash_after(client, answer)
    assert kind == "ok", text
    routed = system.api("router", f"/leads/{lead}")
    assert routed["owner_id"] == "005SDR0SAM"
    assert routed["rule"] == "manual" and routed["reason"] == "covers APAC today"


def test_the_routers_refusal_is_shown_naming_the_field(system: System) -> None:
    client = signed_in(system)
    leads = system.api("router", "/leads")["items"]
    lead = next(x["id"] for x in leads if x["converted_at"] is None)  # a converted one: 409
    answer = client.post(
        f"/routing/leads/{lead}/assign",
        data={"csrf": csrf_of(client), "owner_id": "005NOBODY", "reason": "x"},
    )
    kind, text = flash_after(client, answer)
    assert kind == "error"
    assert "owner_id: no rep '005NOBODY'" in text


def test_attribution_shows_the_reports_figures_and_a_chart_per_mix(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    page = client.get("/attribution", params={"model": "linear"})
    assert page.status_code == 200, page.text
    report = system.api("attribution", "/reports/pipeline-by-source")
    assert report["opportunities"] >= 1
    text = text_of(page.text)
    assert f"{report['opportunities']:,} opportunities" in text
    assert f"{round(float(report['amount'])):,} pipeline (amount)" in text
    charts = re.findall(r'<svg class="chart chart-bar".*?</svg>', page.text, re.S)
    assert len(charts) == 4
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', "".join(charts))]
    assert values and all(v > 0 for v in values)
    for line in report["by_campaign"]["linear"]:
        assert line["campaign_id"] in text


def test_renewals_shows_pipeline_now_and_then_and_the_weekly_trend(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    as_of = system.snapshots[0]["as_of"][:10]
    page = client.get("/renewals", params={"as_of": as_of, "weeks": 4})
    assert page.status_code == 200, page.text
    trend = re.search(r'<svg class="chart chart-line".*?</svg>', page.text, re.S)
    assert trend
    points = re.findall(r'<circle class="point"[^>]*data-series="([^"]+)"', trend.group(0))
    series = set(points)
    assert {"Pipeline", "Best Case", "Commit"} <= series
    assert all(points.count(name) == 4 for name in series)  # one point per snapshot
    table = text_of(page.text.split('id="week-over-week"')[1].split("</table>")[0])
    latest = system.snapshots[-1]["contents"]["total"]["open_by_category"]
    before = system.snapshots[-2]["contents"]["total"]["open_by_category"]
    commit_now, commit_before = float(latest["Commit"]["amount"]), float(before["Commit"]["amount"])
    assert commit_now == 200_000 and commit_before == 120_000
    assert f"Commit {commit_now:,.0f} 2 {commit_before:,.0f} +66.7%" in table
    pipeline = text_of(page.text.split('id="pipeline"')[1].split("</table>")[0])
    assert "End of" in pipeline


def _rows(html: str, table: str, key: str) -> list[str]:
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return re.findall(rf'data-{key}="([^"]+)"', body)


def test_renewals_lists_opportunities_by_category_and_pages_them(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    commit = system.api("renewals", "/opportunities", forecast_category="Commit")
    page = client.get("/renewals", params={"category": "Commit"}).text
    assert _rows(page, "opportunities", "opportunity") == [o["id"] for o in commit["items"]]
    assert f"1\u2013{commit['total']} of {commit['total']}" in unescape(page)
    everything = system.api("renewals", "/opportunities")
    assert everything["total"] > 2
    second = client.get("/renewals", params={"opportunities_from": 2}).text
    ids = [o["id"] for o in everything["items"][2:25]]
    assert _rows(second, "opportunities", "opportunity") == ids
    assert f"3\u2013{2 + len(ids)} of {everything['total']}" in unescape(second)
    assert 'href="?#opportunities-list" rel="prev"' in second  # back to the first page


def test_renewals_lists_the_accounts_with_their_tier(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    accounts = system.api("renewals", "/accounts")
    page = client.get("/renewals").text
    assert _rows(page, "accounts", "account") == [a["id"] for a in accounts["items"]]
    tier = next(a["tier"] for a in accounts["items"] if a["tier"])
    narrowed = system.api("renewals", "/accounts", tier=tier)
    page = client.get("/renewals", params={"tier": tier}).text
    assert _rows(page, "accounts", "account") == [a["id"] for a in narrowed["items"]]


def test_attribution_lists_the_campaigns_with_their_responses(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    campaigns = system.api("attribution", "/campaigns")
    page = client.get("/attribution").text
    assert _rows(page, "campaign-list", "campaign") == [
        c["campaign_id"] for c in campaigns["items"]
    ]
    row = text_of(page.split('data-campaign="ebook_q2">')[1].split("</tr>")[0])
    ebook = next(c for c in campaigns["items"] if c["campaign_id"] == "ebook_q2")
    assert row.split()[:2] == ["ebook_q2", str(ebook["members"])]


def test_health_shows_every_service_ready_with_its_lag(system: System) -> None:
    client = signed_in(system, "dev-read-token")
    page = client.get("/health").text
    for name in ("ingest", "router", "attribution", "renewals"):
        row = re.search(rf'<tr data-service="{name}">.*?</tr>', page, re.S)
        assert row, name
        assert ">ready<" in row.group(0)
    lag = text_of(page.split('id="lag"')[1].split("</table>")[0])
    assert "router revops.forms" in lag  # the prefix left out


BAD_QUERIES = [
    ("/routing", {"leads": "many"}, "leads: must be a whole number"),
    ("/routing", {"leads": "0"}, "leads: Input should be greater than or equal to 1"),
    ("/routing", {"breach_days": "9" * 400}, "breach_days:"),
    ("/attribution", {"from": "2026-02-30"}, "from: must be a date"),
    ("/attribution", {"from": "2026-12-03", "to": "2026-12-01"}, "to: must be on or after from"),
    ("/attribution", {"model": "magic"}, "model: must be one of"),
    ("/attribution", {"to": "\x00"}, "to:"),
    ("/renewals", {"as_of": "yesterday"}, "as_of: must be a date"),
    ("/renewals", {"weeks": "53"}, "weeks: Input should be less than or equal to 52"),
    ("/renewals", {"due_within_days": "-1"}, "due_within_days:"),
    ("/renewals", {"category": "Maybe"}, "category: must be one of"),
    ("/renewals", {"tier": "gold"}, "tier: must be one of"),
    ("/renewals", {"opportunities_from": "-1"}, "opportunities_from:"),
    ("/attribution", {"campaigns_from": "x"}, "campaigns_from: must be a whole number"),
]


@pytest.mark.parametrize(("path", "params", "message"), BAD_QUERIES)
def test_bad_query_values_get_a_400_naming_the_field(
    system: System, path: str, params: dict[str, str], message: str
) -> None:
    client = signed_in(system, "dev-read-token")
    answer = client.get(path, params=params)
    assert answer.status_code == 400, answer.text[:500]
    assert message in unescape(answer.text)


BAD_FORMS = [
    ("/routing/reps/005SDR0SAM", {"action": "explode"}, "action: must be one of"),
    ("/routing/reps/005SDR0SAM", {"action": "weight"}, "weight: is required"),
    ("/routing/reps/005SDR0SAM", {"action": "weight", "weight": "101"}, "weight: Input should"),
    ("/routing/reps/005SDR0SAM", {"action": "daily_cap", "daily_cap": "1e99"}, "daily_cap:"),
    ("/routing/reps/005SDR0SAM", {"action": "daily_cap", "daily_cap": str(2**31)}, "daily_cap:"),
    ("/routing/reps/bad%20id", {"action": "pause"}, "id: has characters that are not allowed"),
    ("/routing/reps/005NOBODY", {"action": "pause"}, "no rep '005NOBODY'"),
    ("/routing/reps", {"id": "x y", "name": "X", "role": "SDR"}, "id: has characters"),
    ("/routing/reps", {"id": "x", "name": "X", "role": "CEO"}, "role: must be one of"),
    ("/routing/reps", {"id": "x", "name": "X", "role": "AE", "email": "no"}, "email:"),
    ("/routing/leads/nope/assign", {"owner_id": "005SDR0SAM"}, "reason: is required"),
    ("/routing/leads/nope/assign", {"owner_id": "005SDR0SAM", "reason": "r"}, "no lead 'nope'"),
    ("/routing/leads/nope/reroute", {}, "no lead 'nope'"),
]


@pytest.mark.parametrize(("path", "form", "message"), BAD_FORMS)
def test_bad_form_values_are_refused_naming_the_field(
    system: System, path: str, form: dict[str, str], message: str
) -> None:
    client = signed_in(system)
    answer = client.post(path, data={"csrf": csrf_of(client), **form})
    kind, text = flash_after(client, answer)
    assert kind == "error"
    assert message in text
