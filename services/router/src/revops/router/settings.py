"""The router's configuration: every rule number of RoutingPolicy, from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from revops.events.crm import CrmSettings
from revops.events.settings import ServiceSettings
from revops.events.working_hours import WorkingHours
from revops.router.domain.regions import RegionMap
from revops.router.domain.reps import Region
from revops.router.domain.rules import DEFAULT_RULE_ORDER, OrderedRule, RoutingPolicy
from revops.router.domain.working_hours import working_hours_of


class RouterSettings(ServiceSettings, CrmSettings):
    service_name: str = "router"
    http_port: int = 8001
    # A batch routes its leads in a dozen queries whatever its size, so bigger batches are
    # cheaper per lead (bench/router_throughput.py: ~800 leads/s at 500, ~1,400 at 2,000).
    consumer_batch_max: int = Field(default=2000, ge=1)

    # How long a new lead may wait for the CRM changes Kafka held when it came (causal
    # order) on a partition that has stopped moving before it is routed without them,
    # saying so in its reason. 0 turns causal order off: every lead is routed with
    # whatever state its batch finds.
    crm_state_wait_s: float = Field(default=2.0, ge=0)
    # ...unless a partition it waits for is moving (catching up after a restart, say):
    # then it waits while that partition moves, up to this long in all.
    crm_state_wait_max_s: float = Field(default=60.0, ge=0)

    recent_touch_days: int = Field(default=30, ge=0)
    closed_opportunity_days: int = Field(default=90, ge=0)
    transfer_credit_days: int = Field(default=14, ge=0)
    first_touch_target_s: int = Field(default=300, ge=1)
    first_status_change_limit_s: int = Field(default=86_400, ge=1)
    # Both SLAs counted in business hours, a calendar per queue ("*": the others), as a
    # rep's working hours are written: SLA_BUSINESS_HOURS='{"inbound-EMEA": {"time_zone":
    # "Europe/Berlin", "shifts": [{"days": ["mon", "fri"], "start": "09:00", "end":
    # "17:00"}], "holidays": ["2026-12-25"]}}'. Empty: wall-clock time.
    sla_business_hours: dict[str, WorkingHours] = Field(default_factory=dict)
    rule_order: tuple[OrderedRule, ...] = DEFAULT_RULE_ORDER  # env RULE_ORDER='["...", ...]'
    high_priority_form_types: frozenset[str] = frozenset(
        {"demo_request", "demo", "contact", "contact_us", "contact_sales"}
    )
    fallback_region: Region | None = None
    # Who is told a high-priority lead waits in `unassigned` / `manual_review`: rep or
    # user ids, WAITING_LEAD_RECIPIENTS='["mgr-1"]'; empty: addressed to the queue's name.
    waiting_lead_recipients: tuple[str, ...] = ()
    # Country (any spelling or ISO code) -> region, over the built-in map.
    # REGION_MAP='{"MX": "EMEA"}'
    region_map: dict[str, Region] = Field(default_factory=dict)
    # The routing policy (territories) in force until one is set through the API, as a
    # YAML or JSON file; unset: one territory per region, by country (REGION_MAP).
    routing_policy_file: Path | None = None
    # A lead whose email's domain matches no account, matched by the company it gave
    # against account names (0-100; below the threshold, no match).
    company_name_matching: bool = True
    company_name_threshold: float = Field(default=90.0, ge=0, le=100)
    # How often the router looks for reps coming on shift (working hours), to route the
    # leads that waited for nobody on shift in their queue.
    shift_check_s: float = Field(default=30.0, gt=0)
    # How often the router looks for leads whose owner let the first-touch SLA pass
    # untouched, to escalate them as the routing policy's ``escalation`` says; 0: never.
    sla_check_s: float = Field(default=30.0, ge=0)

    # Owner write-back to the CRM the lead came from; off unless that CRM's credentials
    # are configured (CrmSettings: HUBSPOT_ACCESS_TOKEN, SALESFORCE_*).
    writeback_timeout_s: float = Field(default=10.0, gt=0)

    def policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            recent_touch_days=self.recent_touch_days,
            closed_opportunity_days=self.closed_opportunity_days,
            transfer_credit_days=self.transfer_credit_days,
            first_touch_target=timedelta(seconds=self.first_touch_target_s),
            first_status_change_limit=timedelta(seconds=self.first_status_change_limit_s),
            rule_order=tuple(self.rule_order),
            high_priority_form_types=frozenset(t.lower() for t in self.high_priority_form_types),
            fallback_region=self.fallback_region,
            waiting_lead_recipients=tuple(self.waiting_lead_recipients),
            sla_calendars=tuple(
                (queue, hours)
                for queue, given in sorted(self.sla_business_hours.items())
                if (hours := working_hours_of(given.model_dump(mode="json"))) is not None
            ),
        )

    def regions(self) -> RegionMap:
        return RegionMap(dict(self.region_map))
