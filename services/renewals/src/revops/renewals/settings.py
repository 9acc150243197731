"""Renewals' configuration: the handbook's numbers as defaults, each overridable from the
environment (env var = field name upper-cased; mappings and lists as JSON)."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from pydantic import Field

from revops.events.crm import CrmSettings
from revops.events.settings import ServiceSettings
from revops.renewals.domain.pipeline import PipelinePolicy
from revops.renewals.domain.renewals import RenewalPolicy
from revops.renewals.domain.schedule import SnapshotSchedule
from revops.renewals.domain.stages import StageMap
from revops.renewals.domain.tiers import Tier, TierPolicy


class RenewalsSettings(ServiceSettings, CrmSettings):
    service_name: str = "renewals"
    http_port: int = 8003
    # Renewals reads only accounts and opportunities, a small share of the traffic, so its
    # fetches come back with a few events each and a batch's fixed cost is most of its CPU:
    # a longer wait makes fewer, fuller batches. A stage change may wait 100 ms; a lead
    # never waits for renewals.
    consumer_fetch_wait_ms: int = Field(default=100, ge=0, le=500)

    # Stage names -> order, beyond the numbers in names and the Salesforce/HubSpot
    # defaults (e.g. STAGE_ORDERS='{"Discovery": 1, "Demo": 2}'), and extra closed names.
    stage_orders: dict[str, int] = Field(default_factory=dict)
    won_stage_names: list[str] = Field(default_factory=list)
    lost_stage_names: list[str] = Field(default_factory=list)
    nbm_stage: int = 1
    qualified_stage: int = 2

    renewal_term_months: int = Field(default=12, ge=1)
    renewal_uplift_percent: Decimal = Decimal(0)
    renewals_pipeline: str = "Renewals"
    renewal_opportunity_type: str = "Renewal"
    renewable_types: list[str] = Field(default_factory=lambda: ["New Business", "Renewal"])

    # The forecast's day and time, and its quarters (in COMPANY_TIMEZONE).
    snapshot_weekday: int = Field(default=4, ge=0, le=6)  # 0 Monday .. 6 Sunday
    snapshot_time: time = time(18, 0)
    fiscal_year_start_month: int = Field(default=1, ge=1, le=12)
    scheduler_enabled: bool = True
    # At start-up, missed snapshots are taken as of their time, at most this many
    # (the oldest beyond it are left out and logged).
    snapshot_catch_up_max: int = Field(default=26, ge=0)
    # A service with no snapshot yet (its first start, or a rebuild) takes every scheduled
    # snapshot since the first change in its history, and at least this many weeks back;
    # 0 takes none.
    snapshot_first_catch_up_weeks: int = Field(default=1, ge=0)
    # How long start-up waits for the consumer to apply the backlog before catching up.
    snapshot_catch_up_wait_s: float = Field(default=120, ge=0)

    # Tiers: the onboarding rule's "from" and "into" tiers ("none" = no tier yet).
    onboarding_from_tiers: list[str] = Field(default_factory=lambda: ["quartz", "none"])
    onboarding_into_tiers: list[str] = Field(
        default_factory=lambda: ["ruby", "sapphire", "pearl", "diamond"]
    )
    ultimate_plan: str = "Ultimate"

    # Creating the renewal in Salesforce (off unless Salesforce's credentials are set:
    # CrmSettings, SALESFORCE_*).
    # An External ID field on Opportunity: the renewal is upserted by it, so a retried
    # create can never make a second record.
    salesforce_renewal_key_field: str = "Renewal_Key__c"
    salesforce_pipeline_field: str | None = "Pipeline__c"
    salesforce_renewal_stage: str = "Prospecting"
    salesforce_cancelled_stage: str = "Closed Lost"
    salesforce_timeout_s: float = Field(default=10, gt=0)
    salesforce_tries: int = Field(default=3, ge=1)  # within one delivery, before the outbox

    def stage_map(self) -> StageMap:
        return StageMap().with_overrides(
            self.stage_orders, frozenset(self.won_stage_names), frozenset(self.lost_stage_names)
        )

    def pipeline_policy(self) -> PipelinePolicy:
        return PipelinePolicy(nbm_stage=self.nbm_stage, qualified_stage=self.qualified_stage)

    def renewal_policy(self) -> RenewalPolicy:
        return RenewalPolicy(
            term_months=self.renewal_term_months,
            uplift_percent=self.renewal_uplift_percent,
            pipeline=self.renewals_pipeline,
            opportunity_type=self.renewal_opportunity_type,
            renewable_types=frozenset(self.renewable_types),
        )

    def schedule(self) -> SnapshotSchedule:
        return SnapshotSchedule(self.snapshot_weekday, self.snapshot_time, self.company_timezone)

    def tier_policy(self) -> TierPolicy:
        def tier(name: str) -> Tier | None:
            return None if name.lower() == "none" else Tier(name.lower())

        return TierPolicy(
            ultimate_plan=self.ultimate_plan,
            onboarding_from=frozenset(tier(n) for n in self.onboarding_from_tiers),
            onboarding_into=frozenset(
                t for t in (tier(n) for n in self.onboarding_into_tiers) if t is not None
            ),
        )

    @property
    def salesforce_enabled(self) -> bool:
        return self.salesforce_configured
