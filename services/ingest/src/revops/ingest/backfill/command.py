"""``revops backfill salesforce|hubspot``: the settings, the run, what it prints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from pydantic import Field, SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from revops.events.crm import (
    CredentialError,
    CrmSettings,
    SalesforceAuth,
    hubspot_client,
    salesforce_client,
)
from revops.events.producer import EventProducer
from revops.ingest.backfill.calls import (
    ApiCaller,
    ApiRefused,
    ApiUnavailable,
    RateWindow,
    Sleep,
)
from revops.ingest.backfill.roster import (
    RosterSummary,
    RouterReps,
    export_csv,
    import_csv,
    sync_hubspot,
    sync_salesforce,
)
from revops.ingest.backfill.run import Checkpoints, Publisher, Summary, run_backfill
from revops.ingest.backfill.sources import (
    DEFAULT_OBJECTS,
    OBJECTS,
    BulkChoice,
    HubSpotSource,
    SalesforceSource,
    Source,
)
from revops.ingest.domain.roster import UserFields
from revops.ingest.settings import IngestSettings

CRMS = ("salesforce", "hubspot")


class BackfillSettings(IngestSettings, CrmSettings):
    """Ingest's field mappings and Kafka, the CRM credentials, and the run's own."""

    # The roster commands send reps to the router's reps API with its admin token.
    router_url: str = "http://127.0.0.1:8001"
    api_token: SecretStr = SecretStr("dev-admin-token")
    # The Salesforce User fields a rep's role (SDR or AE) and region are read from (the
    # certified and consultant fields: SALESFORCE_SDR_CERTIFIED_FIELD and
    # SALESFORCE_CONSULTANT_FIELD).
    salesforce_user_role_field: str = "Sales_Role__c"
    salesforce_user_region_field: str = "Region__c"

    def user_fields(self) -> UserFields:
        return UserFields(
            role=self.salesforce_user_role_field,
            region=self.salesforce_user_region_field,
            certified=self.salesforce_sdr_certified_field,
            consultant=self.salesforce_consultant_field,
        )

    # Where each listing's checkpoint is kept between runs.
    backfill_state_file: Path = Path(".revops/backfill-checkpoints.json")
    # Tasks and meetings created in this many days before the run are read.
    backfill_activity_days: int = Field(default=90, ge=1)
    # HubSpot allows 100 calls per 10 seconds to a private app (190 on Professional and
    # Enterprise): the run stays under this many.
    backfill_hubspot_requests_per_10s: int = Field(default=100, ge=1)
    # The run stops once Salesforce says this share of the org's daily API calls is used,
    # leaving the rest to the integrations that need them (a later run resumes).
    backfill_salesforce_max_api_share: float = Field(default=0.9, gt=0, le=1)
    # Salesforce listings of more than BACKFILL_SALESFORCE_BULK_OVER records are read
    # through Bulk API 2.0 query jobs (auto); bulk: every listing; rest: none.
    backfill_salesforce_api: Literal["auto", "rest", "bulk"] = "auto"
    backfill_salesforce_bulk_over: int = Field(default=50_000, ge=0)
    # Records per bulk result set (maxRecords): smaller sets answer sooner.
    backfill_salesforce_bulk_result_set: int = Field(default=50_000, ge=1)
    # How long a run waits for a bulk job to complete before it stops (a later run goes
    # on with the same job).
    backfill_salesforce_bulk_max_wait_s: float = Field(default=3600, gt=0)
    # A page's events (up to 2,000 records) are acknowledged together: more time than a
    # webhook's handful gets.
    backfill_publish_timeout_s: float = Field(default=30, gt=0)


def build_source(
    crm: str, settings: BackfillSettings, now: datetime, sleep: Sleep = asyncio.sleep
) -> tuple[Source, str]:
    """The CRM's source and the scope of its checkpoints (the org, the portal)."""
    if crm == "salesforce":
        auth = SalesforceAuth(settings)
        caller = ApiCaller(
            salesforce_client(settings, auth),
            "Salesforce",
            max_api_share=settings.backfill_salesforce_max_api_share,
            sleep=sleep,
        )
        source = SalesforceSource(
            caller,
            auth,
            api_version=settings.salesforce_api_version,
            custom=settings.salesforce_custom_fields(),
            activity_days=settings.backfill_activity_days,
            now=now,
            bulk=BulkChoice(
                api=settings.backfill_salesforce_api,
                over=settings.backfill_salesforce_bulk_over,
                result_set_size=settings.backfill_salesforce_bulk_result_set,
                max_wait_s=settings.backfill_salesforce_bulk_max_wait_s,
            ),
            sleep=sleep,
        )
        scope = settings.salesforce_instance_url or settings.salesforce_login_url
        return source, f"salesforce {scope} {settings.salesforce_username or ''}".strip()
    if crm == "hubspot":
        window = RateWindow(settings.backfill_hubspot_requests_per_10s, 10.0, _monotonic)
        caller = ApiCaller(hubspot_client(settings), "HubSpot", window=window, sleep=sleep)
        company = settings.hubspot_company_properties()
        return HubSpotSource(caller, company=company), f"hubspot {settings.hubspot_api_base}"
    raise ValueError(f"unknown CRM {crm!r}: one of {', '.join(CRMS)}")


def _monotonic() -> float:
    return asyncio.get_running_loop().time()


async def backfill(
    crm: str,
    settings: BackfillSettings,
    *,
    objects: Sequence[str] = DEFAULT_OBJECTS,
    since: datetime | None = None,
    dry_run: bool = False,
    restart: bool = False,
    progress: Progress | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Summary:
    now = datetime.now(UTC)
    try:
        source, scope = build_source(crm, settings, now, sleep)
    except CredentialError as exc:
        return Summary(crm=crm, dry_run=dry_run, stopped=str(exc))
    checkpoints = Checkpoints(settings.backfill_state_file, scope)
    if restart and not dry_run:
        checkpoints.forget()
    producer: EventProducer | None = None
    if not dry_run:
        producer = EventProducer(
            settings.model_copy(
                update={"kafka_publish_timeout_s": settings.backfill_publish_timeout_s}
            ),
            client_id=f"revops-backfill-{crm}",
        )
    publisher: Publisher | None = producer
    bars: dict[str, TaskID] = {}

    def show(unit: str, read: int, total: int | None) -> None:
        if progress is None:
            return
        if unit not in bars:
            bars[unit] = progress.add_task(unit, total=total)
        progress.update(bars[unit], completed=read, total=total)

    try:
        return await run_backfill(
            source,
            objects,
            publisher,
            checkpoints,
            received_at=now,
            since=since,
            progress=show,
        )
    finally:
        await _close(source)
        if producer is not None:
            await producer.stop()


async def _close(source: Source) -> None:
    caller = getattr(source, "_caller", None)
    if isinstance(caller, ApiCaller):
        await caller.client.aclose()


# --- the command --------------------------------------------------------------------------------

backfill_app = typer.Typer(
    help="Publish what a CRM already holds as the events its webhooks produce.",
    no_args_is_help=True,
)
console = Console()


def _objects(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in OBJECTS]
    if unknown or not names:
        raise typer.BadParameter(
            f"{', '.join(unknown) or 'none'}: choose from {', '.join(OBJECTS)}"
        )
    return names


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(
    crm: str,
    objects: str,
    since: str | None,
    dry_run: bool,
    restart: bool,
    api: str | None = None,
) -> None:
    if api is not None and api not in ("auto", "rest", "bulk"):
        raise typer.BadParameter(f"--api {api!r}: auto, rest or bulk")
    api_setting: dict[str, Any] = {"backfill_salesforce_api": api} if api else {}
    settings = BackfillSettings(**api_setting)
    chosen = _objects(objects)
    with Progress(
        TextColumn("{task.description}", style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=False,
    ) as bars:
        summary = asyncio.run(
            backfill(
                crm,
                settings,
                objects=chosen,
                since=_since(since),
                dry_run=dry_run,
                restart=restart,
                progress=bars,
            )
        )
    print_summary(summary)
    if not summary.complete:
        raise typer.Exit(1)


def print_summary(summary: Summary) -> None:
    table = Table()
    table.add_column("listing", no_wrap=True)
    for heading in ("read", "events", "published", "bad", "before --since", "pages", "state"):
        table.add_column(heading)
    for u in summary.units:
        state = "finished" if u.finished else f"stopped: {u.stopped}" if u.stopped else "open"
        table.add_row(
            u.unit,
            f"{u.read:,}",
            f"{u.events:,}",
            f"{u.published:,}",
            f"{u.bad:,}",
            f"{u.older:,}",
            f"{u.pages:,}",
            state,
        )
    console.print(table)
    for u in summary.units:
        for problem in u.problems:
            console.print(f"bad record in {u.unit}: {problem}", soft_wrap=True)
        if u.bad > len(u.problems):
            console.print(f"... and {u.bad - len(u.problems)} more bad records in {u.unit}")
    if summary.dry_run:
        console.print("dry run: nothing was published and no checkpoint was written")
    if summary.stopped:
        console.print(f"[red]stopped:[/red] {summary.stopped}", soft_wrap=True)


ALL_DEFAULT = ",".join(DEFAULT_OBJECTS)
ObjectsOption = Annotated[
    str,
    typer.Option(
        "--objects",
        help=f"comma-separated, of {', '.join(OBJECTS)} (leads: see the setup guide)",
    ),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="only records changed at or after (ISO date/time)")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="read and check everything, publish nothing")
]
RestartOption = Annotated[
    bool, typer.Option("--restart", help="ignore the checkpoints: read every listing anew")
]


ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="bulk: every listing through Bulk API 2.0 query jobs; rest: none; auto: those "
        "over BACKFILL_SALESFORCE_BULK_OVER records (default BACKFILL_SALESFORCE_API)",
    ),
]


@backfill_app.command("salesforce")
def backfill_salesforce(
    objects: ObjectsOption = ALL_DEFAULT,
    since: SinceOption = None,
    dry_run: DryRunOption = False,
    restart: RestartOption = False,
    api: ApiOption = None,
) -> None:
    """Accounts, contacts, leads, opportunities with their stage history, recent tasks
    and events, from the org's REST API (large listings through Bulk API 2.0)."""
    _run("salesforce", objects, since, dry_run, restart, api)


@backfill_app.command("hubspot")
def backfill_hubspot(
    objects: ObjectsOption = ALL_DEFAULT,
    since: SinceOption = None,
    dry_run: DryRunOption = False,
    restart: RestartOption = False,
) -> None:
    """Companies, contacts and deals with their stage history, from the CRM v3 API."""
    _run("hubspot", objects, since, dry_run, restart)


# --- the roster ---------------------------------------------------------------------------------

reps_app = typer.Typer(
    help="The roster: sync from a CRM, import or export a CSV file (through the router's "
    "reps API, ROUTER_URL with API_TOKEN).",
    no_args_is_help=True,
)


def router_reps(settings: BackfillSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=settings.router_url.rstrip("/"),
        headers={"Authorization": f"Bearer {settings.api_token.get_secret_value()}"},
        timeout=30,
    )


async def sync_reps(
    crm: str, settings: BackfillSettings, sleep: Sleep = asyncio.sleep
) -> RosterSummary:
    async with router_reps(settings) as client:
        reps = RouterReps(client)
        if crm == "salesforce":
            return await sync_salesforce(reps, settings, settings.user_fields(), sleep)
        return await sync_hubspot(reps, settings, sleep)


def print_roster(summary: RosterSummary) -> None:
    console.print(
        f"created {len(summary.created)}, updated {len(summary.updated)}, "
        f"unchanged {summary.unchanged}, refused {len(summary.refused)}"
        + (f", users without a rep role {summary.not_reps}" if summary.not_reps else "")
    )
    for line in summary.refused:
        console.print(f"refused: {line}", soft_wrap=True)
    for owner in summary.unmatched:
        console.print(f"HubSpot owner with no rep of the same email: {owner}", soft_wrap=True)


def _roster(run: Any) -> None:
    try:
        summary = asyncio.run(run)
    except (CredentialError, ApiRefused, ApiUnavailable, httpx.HTTPError) as exc:
        console.print(f"[red]stopped:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    print_roster(summary)
    if summary.refused:
        raise typer.Exit(1)


@reps_app.command("sync")
def reps_sync(
    crm: Annotated[str, typer.Argument(help="salesforce (Users) or hubspot (owners)")],
) -> None:
    """Salesforce: every user whose role field says SDR or AE becomes or updates the rep
    of the same id. HubSpot: each rep gets the owner id of the owner with its email."""
    if crm not in CRMS:
        raise typer.BadParameter(f"{crm!r}: one of {', '.join(CRMS)}")
    _roster(sync_reps(crm, BackfillSettings()))


@reps_app.command("import")
def reps_import(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Create or update the reps of a CSV file (header: any of the columns of
    ``revops reps export``; id is required, empty cells change nothing)."""

    async def run() -> RosterSummary:
        async with router_reps(BackfillSettings()) as client:
            return await import_csv(RouterReps(client), file)

    _roster(run())


@reps_app.command("export")
def reps_export(file: Annotated[Path, typer.Argument(dir_okay=False)]) -> None:
    """Write every rep to a CSV file, in rotation order."""

    async def run() -> int:
        async with router_reps(BackfillSettings()) as client:
            return await export_csv(RouterReps(client), file)

    console.print(f"{asyncio.run(run())} reps written to {file}")
