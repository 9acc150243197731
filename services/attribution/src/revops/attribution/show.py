"""`revops-attribution show`: the service's answers, printed readably, for the demo and for
a newcomer's first look (it only reads the running service's API)."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

SHOWN_MODELS = ("first_touch", "w_shaped", "full_path", "linear", "time_decay")


def _get(client: httpx.Client, url: str, **params: Any) -> Any:
    response = client.get(url, params=params)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()


def show_lead(console: Console, client: httpx.Client, email: str) -> None:
    lead = _get(client, "/leads", email=email)
    if lead is None:
        console.print(f"[yellow]{email}: not known to attribution (yet)[/]")
        return
    console.print(
        f"[bold]{lead['email']}[/]  Lead Source [cyan]{lead['lead_source']}[/], "
        f"First Touchpoint [cyan]{lead['first_touchpoint']}[/] "
        f"({lead['first_touch_at'] or 'no gated touch yet'}), "
        f"Original Source [cyan]{lead['original_source']}[/]"
        + (f" ({lead['original_source_detail']})" if lead["original_source_detail"] else "")
    )
    for touch in lead["touches"]:
        console.print(
            f"    {touch['touched_at'][:16]}  {touch['kind']:<15} "
            f"{touch['form_type'] or '':<14} {touch['campaign_id'] or ''}"
        )


def show_opportunity(console: Console, client: httpx.Client, opportunity_id: str) -> None:
    answer = _get(client, f"/opportunities/{opportunity_id}/attribution")
    if answer is None:
        console.print(f"[yellow]opportunity {opportunity_id}: not known to attribution (yet)[/]")
        return
    console.print(
        f"[bold]Opportunity {opportunity_id}[/] (account {answer['account_id']}): "
        f"Opportunity Source [green]{answer['opportunity_source']}[/] "
        f"by rule [green]{answer['source_rule']}[/]; the lead's own source "
        f"{answer['lead_source']}; primary campaign {answer['primary_campaign_id']}"
    )
    console.print(f"    why: {answer['reason']}")
    table = Table("touched", "who", "campaign", "positions", *SHOWN_MODELS, box=None)
    for touch in answer["campaigns"]:
        table.add_row(
            touch["touched_at"][:16],
            touch["email"],
            touch["campaign_id"],
            ",".join(touch["positions"]),
            *(f"{touch['credit'][m]:.1%}" for m in SHOWN_MODELS),
        )
    console.print(table)


def show_pipeline(console: Console, client: httpx.Client) -> None:
    report = _get(client, "/reports/pipeline-by-source")
    table = Table("opportunity source", "opportunities", "amount", title="Pipeline by source")
    for line in report["by_opportunity_source"]:
        table.add_row(str(line["key"]), str(line["opportunities"]), line["amount"])
    console.print(table)
    campaigns = Table(
        "campaign", "influenced", "W-shaped share", "W-shaped amount", title="Campaigns"
    )
    for line in report["by_campaign"]["w_shaped"][:10]:
        campaigns.add_row(
            line["campaign_id"],
            str(line["opportunities"]),
            f"{line['credited_opportunities']:.2f}",
            line["credited_amount"],
        )
    console.print(campaigns)


def show(base_url: str, token: str, emails: list[str], opportunity_ids: list[str]) -> None:
    console = Console()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for email in emails:
            show_lead(console, client, email)
        for opportunity_id in opportunity_ids:
            show_opportunity(console, client, opportunity_id)
        show_pipeline(console, client)
