"""The console's pages: Routing, Attribution, Renewals and forecast, Health; sign-in;
the roster's and waiting leads' admin actions (forms, then a redirect to the page)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from revops.console import auth, views
from revops.console.charts import bar_chart, line_chart
from revops.console.client import ApiRefused, Services
from revops.console.formats import FILTERS, change, compact, count, label
from revops.console.inputs import (
    ACCOUNT_TIERS,
    ATTRIBUTION_MODELS,
    FORECAST_CATEGORIES,
    OPPORTUNITY_STATUSES,
    Assignment,
    AttributionQuery,
    InputRefused,
    NewRep,
    PathId,
    RenewalsQuery,
    RepChange,
    RoutingQuery,
    SignIn,
    parse,
)

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals["change"] = change

router = APIRouter()

# Waiting leads shown per queue, each read from the router (the queue lists only ids).
WAITING_SHOWN = 20
RENEWALS_SHOWN = 50
# Rows in each paged table (opportunities, accounts, campaigns).
LIST_ROWS = 25


def services_of(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    role = auth.role_of(request)
    return templates.TemplateResponse(
        request,
        template,
        {
            "role": role,
            "csrf": auth.csrf_token(request),
            "flash": auth.take_flash(request),
            **context,
        },
        status_code=status,
    )


def moment(day: date, *, end_of_day: bool = False) -> str:
    """A date as the RFC 3339 moment the APIs take: its start, or its end (the next
    day's start), in UTC."""
    start = datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def shown_params(request: Request) -> dict[str, str]:
    """The page's query, each parameter once: what a table's page links keep."""
    return {k: v for k, v in request.query_params.items() if v}


def back_to(page: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"{page}#{anchor}" if anchor else page, status_code=303)


async def posted(request: Request) -> dict[str, Any]:
    """A form's fields, once its CSRF token is checked."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    auth.check_csrf(request, values.get("csrf"))
    return values


# --- sign-in ------------------------------------------------------------------------------


def _safe_next(value: object) -> str:
    # Only a path of this site: never another host ("//evil", "https://...").
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value if "\\" not in value else "/routing"
    return "/routing"


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    return back_to("/routing" if auth.role_of(request) else "/signin")


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html", next=_safe_next(request.query_params.get("next")))


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    values = await posted(request)
    target = _safe_next(values.get("next"))
    try:
        form = parse(SignIn, values)
    except InputRefused as refused:
        return render(request, "signin.html", 400, next=target, error=str(refused))
    role = auth.role_for_token(auth.settings_of(request), form)
    if role is None:
        message = "token: this is neither the read token nor the admin token"
        return render(request, "signin.html", 401, next=target, error=message)
    auth.sign_in(request, role)
    return back_to(target)


@router.post("/signout")
async def signout(request: Request) -> Response:
    await posted(request)
    auth.sign_out(request)
    return back_to("/signin")


# --- routing ------------------------------------------------------------------------------


@router.get("/routing", response_class=HTMLResponse)
async def routing(request: Request) -> HTMLResponse:
    auth.require_role(request)
    query = parse(RoutingQuery, request.query_params)
    token = auth.token_for(request)
    services = services_of(request)
    since = datetime.now(UTC) - timedelta(days=query.breach_days)
    leads, queues, breaches, reps = await asyncio.gather(
        services.recent_leads(token, query.leads),
        services.queues(token),
        services.breaches(token, since.strftime("%Y-%m-%dT%H:%M:%SZ"), 200),
        services.reps(token),
    )
    waiting = await services.waiting_leads(token, queues, WAITING_SHOWN)
    rule_bars = _tally(lead.get("rule") for lead in leads)
    return render(
        request,
        "routing.html",
        page="routing",
        query=query,
        leads=leads,
        queues=queues,
        waiting=waiting,
        breaches=breaches,
        open_breaches=sum(1 for b in breaches if b.get("open")),
        reps=reps,
        rep_names={str(r.get("id")): str(r.get("name") or r.get("id")) for r in reps},
        active_reps=[r for r in reps if r.get("active")],
        rules_chart=bar_chart(
            [(label(k), v) for k, v in rule_bars],
            title=f"The last {len(leads)} leads by routing rule",
            value_format=lambda v: count(v),
        ),
    )


def _tally(values: Any) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for value in values:
        key = str(value) if value else "(none)"
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _changes_of(change: RepChange) -> dict[str, Any]:
    if change.action in ("pause", "resume"):
        return {"paused": change.action == "pause"}
    if change.action == "weight":
        if change.weight is None:
            raise InputRefused("weight", "is required to change the weight (0 to 100)")
        return {"weight": change.weight}
    return {"daily_cap": change.daily_cap}  # empty: no cap


_DONE = {
    "pause": "paused",
    "resume": "back in rotation",
    "weight": "weight changed",
    "daily_cap": "daily cap changed",
}
_APPLIED_SOON = "the roster shows it once the router has applied the change (a moment)"


async def _admin_action(
    request: Request, subject: str, action: Callable[[], Awaitable[str]]
) -> None:
    """Run an admin action and say on the next page what came of it: what was done, or why
    the input or the router refused it."""
    try:
        done = await action()
    except InputRefused as refused:
        auth.flash(request, "error", f"{subject}: {refused}")
    except ApiRefused as refused:
        auth.flash(request, "error", f"{subject}: the router refused: {refused.message}")
    else:
        auth.flash(request, "ok", done)


@router.post("/routing/reps/{rep_id}")
async def change_rep(request: Request, rep_id: str) -> Response:
    auth.require_admin(request)
    values = await posted(request)

    async def action() -> str:
        rep = parse(PathId, {"id": rep_id}).id
        change = parse(RepChange, values)
        fields = _changes_of(change)
        await services_of(request).change_rep(auth.token_for(request), rep, fields)
        return f"Rep {rep}: {_DONE[change.action]}; {_APPLIED_SOON}."

    await _admin_action(request, f"Rep {rep_id}", action)
    return back_to("/routing", "roster")


@router.post("/routing/reps")
async def add_rep(request: Request) -> Response:
    auth.require_admin(request)
    values = await posted(request)

    async def action() -> str:
        rep = parse(NewRep, values)
        await services_of(request).add_rep(
            auth.token_for(request), rep.model_dump(exclude_none=True)
        )
        return f"Rep {rep.id} added; {_APPLIED_SOON}."

    await _admin_action(request, "New rep", action)
    return back_to("/routing", "roster")


@router.post("/routing/leads/{lead_id}/assign")
async def assign_lead(request: Request, lead_id: str) -> Response:
    auth.require_admin(request)
    values = await posted(request)

    async def action() -> str:
        lead = parse(PathId, {"id": lead_id}).id
        assignment = parse(Assignment, values)
        await services_of(request).assign(
            auth.token_for(request), lead, assignment.owner_id, assignment.reason
        )
        return f"Lead {lead} assigned to {assignment.owner_id}."

    await _admin_action(request, f"Lead {lead_id}", action)
    return back_to("/routing", "waiting")


@router.post("/routing/leads/{lead_id}/reroute")
async def reroute_lead(request: Request, lead_id: str) -> Response:
    auth.require_admin(request)
    await posted(request)

    async def action() -> str:
        lead = parse(PathId, {"id": lead_id}).id
        routed = await services_of(request).reroute(auth.token_for(request), lead)
        owner = routed.get("owner_id") or "nobody yet"
        return f"Lead {lead} routed again: {owner} ({routed.get('reason')})."

    await _admin_action(request, f"Lead {lead_id}", action)
    return back_to("/routing", "waiting")


# --- attribution --------------------------------------------------------------------------


@router.get("/attribution", response_class=HTMLResponse)
async def attribution(request: Request) -> HTMLResponse:
    auth.require_role(request)
    query = parse(AttributionQuery, request.query_params)
    if query.from_ and query.to and query.to < query.from_:
        raise InputRefused("to", "must be on or after from")
    token = auth.token_for(request)
    services = services_of(request)
    report, campaign_list = await asyncio.gather(
        services.pipeline_by_source(
            token,
            moment(query.from_) if query.from_ else None,
            moment(query.to, end_of_day=True) if query.to else None,
            query.qualified_only,
        ),
        services.campaigns(token, LIST_ROWS, query.campaigns_from),
    )
    by_campaign: Mapping[str, Any] = report.get("by_campaign") or {}
    models = [m for m in ATTRIBUTION_MODELS if m in by_campaign] or list(by_campaign)
    model = query.model or ("w_shaped" if "w_shaped" in models else (models or [""])[0])
    sources = report.get("by_opportunity_source") or []
    touchpoints = report.get("by_first_touchpoint") or []
    campaigns = views.campaign_table(by_campaign)
    return render(
        request,
        "attribution.html",
        page="attribution",
        query=query,
        report=report,
        sources=sources,
        touchpoints=touchpoints,
        models=models,
        model=model,
        campaigns=campaigns,
        campaign_list=campaign_list,
        campaign_pager=views.pager(
            shown_params(request),
            "campaigns_from",
            query.campaigns_from,
            LIST_ROWS,
            len(campaign_list.items),
            campaign_list.total,
        ),
        source_chart=bar_chart(
            views.amount_bars(sources), title="Pipeline by opportunity source (amount)"
        ),
        source_count_chart=bar_chart(
            views.count_bars(sources),
            title="Opportunities by opportunity source",
            value_format=lambda v: count(v),
        ),
        touchpoint_chart=bar_chart(
            views.count_bars(touchpoints),
            title="Opportunities by first touchpoint",
            value_format=lambda v: count(v),
        ),
        campaign_chart=bar_chart(
            [(c.campaign_id, c.credited_amount.get(model, 0)) for c in campaigns][:15],
            title=f"Credited pipeline by campaign, {label(model)} model",
        ),
    )


# --- renewals and forecast ----------------------------------------------------------------


@router.get("/renewals", response_class=HTMLResponse)
async def renewals(request: Request) -> HTMLResponse:
    auth.require_role(request)
    query = parse(RenewalsQuery, request.query_params)
    token = auth.token_for(request)
    services = services_of(request)
    today = datetime.now(UTC).date()
    due_before = today + timedelta(days=query.due_within_days)
    then_moment = moment(query.as_of, end_of_day=True) if query.as_of else None
    wanted = {"forecast_category": query.category, "status": query.status}
    # Two groups, all read at once (asyncio.gather is typed for up to six).
    figures, lists = await asyncio.gather(
        asyncio.gather(
            services.pipeline(token),
            services.pipeline(token, then_moment) if then_moment else _nothing(),
            services.renewals_due(token, due_before.isoformat(), RENEWALS_SHOWN),
            services.snapshots(token, query.weeks),
            services.next_snapshot_at(token),
        ),
        asyncio.gather(
            services.opportunities(token, wanted, LIST_ROWS, query.opportunities_from),
            services.accounts(token, query.tier, LIST_ROWS, query.accounts_from),
        ),
    )
    now_figures, then_figures, due, snapshots, next_at = figures
    opportunities, accounts = lists
    params = shown_params(request)
    trend = views.forecast_trend(snapshots)
    categories = sorted(
        set((now_figures.get("total") or {}).get("open_by_category") or {})
        | set(((then_figures or {}).get("total") or {}).get("open_by_category") or {})
    )
    return render(
        request,
        "renewals.html",
        page="renewals",
        query=query,
        now=now_figures,
        then=then_figures,
        categories=categories,
        due=due,
        due_before=due_before,
        trend=trend,
        next_at=next_at,
        snapshots=snapshots,
        params=params,
        opportunities=opportunities,
        accounts=accounts,
        categories_offered=FORECAST_CATEGORIES,
        statuses_offered=OPPORTUNITY_STATUSES,
        tiers_offered=ACCOUNT_TIERS,
        opportunity_pager=views.pager(
            params,
            "opportunities_from",
            query.opportunities_from,
            LIST_ROWS,
            len(opportunities.items),
            opportunities.total,
        ),
        account_pager=views.pager(
            params,
            "accounts_from",
            query.accounts_from,
            LIST_ROWS,
            len(accounts.items),
            accounts.total,
        ),
        bucket=views.bucket_amount,
        category_chart=bar_chart(
            views.category_bars(now_figures, categories),
            title="Open pipeline now by forecast category (amount)",
        ),
        trend_chart=line_chart(
            trend.labels,
            {label(k): v for k, v in trend.amounts.items()},
            title="Open pipeline by forecast category, snapshot by snapshot",
            value_format=compact,
        ),
    )


async def _nothing() -> None:
    return None


# --- health -------------------------------------------------------------------------------


@router.get("/health", response_class=HTMLResponse)
async def health(request: Request) -> HTMLResponse:
    auth.require_role(request)
    found = await services_of(request).all_health()
    return render(request, "health.html", page="health", services=found)


def signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
