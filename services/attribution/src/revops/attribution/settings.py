"""Attribution's configuration: the handbook's numbers as defaults, every one overridable
from the environment (a change is applied to history by `revops-attribution recompute`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from revops.attribution.domain.influence import InfluencePolicy
from revops.attribution.domain.lead_source import (
    DEFAULT_FORM_TYPE_TOUCHPOINTS,
    FirstTouchpoint,
    RepRole,
    TouchpointRules,
)
from revops.attribution.domain.opportunity_source import OpportunitySourcePolicy
from revops.attribution.domain.original_source import SourceBucketRules
from revops.events.settings import ServiceSettings


class AttributionSettings(ServiceSettings):
    service_name: str = "attribution"
    http_port: int = 8002
    # Up to 2,000 events decided at once when there is a backlog (a recompute, a restart):
    # a person or opportunity with news in several events is decided once per batch.
    # Measured on 100,000 events: 1,000 -> 2,800-3,100 events/s, 2,000 -> 3,150-3,600,
    # 5,000 no better (a wider span of time per batch decides more again).
    consumer_batch_max: int = Field(default=2000, ge=1)

    # Opportunity source: an outbound contact created this many days or fewer before the
    # converted lead gives the opportunity its source (env OUTBOUND_CONTACT_DAYS).
    outbound_contact_days: int = Field(default=60, ge=0)
    # Campaign influence: forms in this many days up to opportunity creation.
    influence_window_days: int = Field(default=30, ge=0)
    # Time-decay model: a touch's weight halves every this many days.
    time_decay_half_life_days: float = Field(default=7, gt=0)

    # First touchpoint per form type and per form id (JSON objects in the environment,
    # e.g. FORM_ID_TOUCHPOINTS='{"310000a0-2b6b": "Contact/Demo Form"}').
    form_type_touchpoints: dict[str, FirstTouchpoint] = Field(
        default_factory=lambda: dict(DEFAULT_FORM_TYPE_TOUCHPOINTS)
    )
    form_id_touchpoints: dict[str, FirstTouchpoint] = Field(default_factory=dict)
    # Our own web sites: a referrer from them is navigation, not a source.
    own_domains: list[str] = Field(default_factory=list)
    # CRM user id -> SDR or AE: who created a lead by hand, who owns a manual opportunity.
    rep_roles: dict[str, RepRole] = Field(default_factory=dict)

    def touchpoint_rules(self) -> TouchpointRules:
        return TouchpointRules(
            by_form_id=dict(self.form_id_touchpoints),
            by_form_type={k.lower(): v for k, v in self.form_type_touchpoints.items()},
        )

    def bucket_rules(self) -> SourceBucketRules:
        return SourceBucketRules(own_domains=frozenset(d.lower() for d in self.own_domains))

    def opportunity_source_policy(self) -> OpportunitySourcePolicy:
        return OpportunitySourcePolicy(outbound_window=timedelta(days=self.outbound_contact_days))

    def influence_policy(self) -> InfluencePolicy:
        return InfluencePolicy(
            window=timedelta(days=self.influence_window_days),
            half_life=timedelta(days=self.time_decay_half_life_days),
        )
