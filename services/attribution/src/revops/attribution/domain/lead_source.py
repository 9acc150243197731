"""Lead Source, First Touchpoint and Original Source of one person (RULES.md).

Everything is decided from the *set* of what is known about the person -- how the
record was created and every gated interaction (form, sign-up) -- never from the
order events arrived in. The first touchpoint is the earliest gated interaction by
`occurred_at`; a later one never overwrites it, and a form that happened earlier but
arrived late still wins, because replaying the topics must give the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from revops.attribution.domain.original_source import (
    DEFAULT_BUCKET_RULES,
    OriginalSource,
    SourceBucket,
    SourceBucketRules,
    original_source,
)


class LeadSource(StrEnum):
    INBOUND = "Inbound"
    REFERRAL = "Referral"
    SDR_CREATED = "SDR Created"
    AE_CREATED = "AE Created"
    EVENT = "Event"
    FEEDBACK_FORM = "Feedback Form"
    OTHER = "Other"


OUTBOUND_LEAD_SOURCES = frozenset({LeadSource.SDR_CREATED, LeadSource.AE_CREATED})


class FirstTouchpoint(StrEnum):
    PRIVATE_INSTANCE_INSTALL = "Private Instance/Install"
    CLOUD_SIGN_UP = "Cloud Sign-up"
    CONTACT_DEMO_FORM = "Contact/Demo Form"
    INBOUND_EMAIL = "Inbound Email"
    FEEDBACK_FORM = "Feedback Form"
    REFERRAL = "Referral"
    EVENT = "Event"
    CONTENT_DOWNLOAD = "Content Download"
    SUBSCRIPTION = "Subscription"
    OTHER = "Other"
    UNCATEGORIZED = "Uncategorized"


class TouchKind(StrEnum):
    FORM = "form"
    CLOUD_SIGNUP = "cloud_signup"
    PRIVATE_INSTALL = "private_install"


class RepRole(StrEnum):
    SDR = "SDR"
    AE = "AE"


ROLE_LEAD_SOURCE: Mapping[RepRole, LeadSource] = {
    RepRole.SDR: LeadSource.SDR_CREATED,
    RepRole.AE: LeadSource.AE_CREATED,
}


@dataclass(frozen=True)
class GatedTouch:
    """A gated interaction: the person gave their email (a form or a product sign-up)."""

    touch_id: str
    kind: TouchKind
    occurred_at: datetime
    form_id: str | None = None
    form_type: str | None = None
    campaign_id: str | None = None
    page_url: str | None = None
    referrer: str | None = None
    # The first page the person was seen on and its referrer, when the sender knows them
    # (HubSpot's hs_analytics_first_url / hs_analytics_first_referrer).
    first_page_url: str | None = None
    first_referrer: str | None = None


@dataclass(frozen=True)
class PersonCreated:
    """How the CRM says the person's record was created.

    `created_by_role` is set when a rep created it by hand (outbound prospecting);
    `lead_source` is the value the CRM carries, if any; `offline_detail` names the
    channel (CRM_UI, IMPORT, SALESFORCE...) for the OFFLINE original source.
    """

    occurred_at: datetime
    created_by_role: RepRole | None = None
    lead_source: str | None = None
    offline_detail: str | None = None


DEFAULT_FORM_TYPE_TOUCHPOINTS: Mapping[str, FirstTouchpoint] = {
    "demo": FirstTouchpoint.CONTACT_DEMO_FORM,
    "contact": FirstTouchpoint.CONTACT_DEMO_FORM,
    "ebook": FirstTouchpoint.CONTENT_DOWNLOAD,
    "whitepaper": FirstTouchpoint.CONTENT_DOWNLOAD,
    "content": FirstTouchpoint.CONTENT_DOWNLOAD,
    "download": FirstTouchpoint.CONTENT_DOWNLOAD,
    "newsletter": FirstTouchpoint.SUBSCRIPTION,
    "subscription": FirstTouchpoint.SUBSCRIPTION,
    "nps": FirstTouchpoint.FEEDBACK_FORM,
    "survey": FirstTouchpoint.FEEDBACK_FORM,
    "feedback": FirstTouchpoint.FEEDBACK_FORM,
    "event": FirstTouchpoint.EVENT,
    "webinar": FirstTouchpoint.EVENT,
    "referral": FirstTouchpoint.REFERRAL,
    "inbound_email": FirstTouchpoint.INBOUND_EMAIL,
}

DEFAULT_KIND_TOUCHPOINTS: Mapping[TouchKind, FirstTouchpoint] = {
    TouchKind.CLOUD_SIGNUP: FirstTouchpoint.CLOUD_SIGN_UP,
    TouchKind.PRIVATE_INSTALL: FirstTouchpoint.PRIVATE_INSTANCE_INSTALL,
}

# The Lead Source values finer than "Inbound" that a first touch can give.
DEFAULT_TOUCHPOINT_LEAD_SOURCES: Mapping[FirstTouchpoint, LeadSource] = {
    FirstTouchpoint.EVENT: LeadSource.EVENT,
    FirstTouchpoint.FEEDBACK_FORM: LeadSource.FEEDBACK_FORM,
    FirstTouchpoint.REFERRAL: LeadSource.REFERRAL,
}


@dataclass(frozen=True)
class TouchpointRules:
    """Which gated interaction gives which touchpoint: configuration (RULES.md).

    A form id in `by_form_id` overrides its type. A form type is looked up whole
    (``inbound_email``), then word by word (``demo_request`` -> ``demo``,
    ``Event Registration`` -> ``event``); an unknown type is ``Other``.
    """

    by_form_id: Mapping[str, FirstTouchpoint] = field(default_factory=dict)
    by_form_type: Mapping[str, FirstTouchpoint] = field(
        default_factory=lambda: dict(DEFAULT_FORM_TYPE_TOUCHPOINTS)
    )
    by_kind: Mapping[TouchKind, FirstTouchpoint] = field(
        default_factory=lambda: dict(DEFAULT_KIND_TOUCHPOINTS)
    )
    lead_source_by_touchpoint: Mapping[FirstTouchpoint, LeadSource] = field(
        default_factory=lambda: dict(DEFAULT_TOUCHPOINT_LEAD_SOURCES)
    )

    def touchpoint_of(self, touch: GatedTouch) -> FirstTouchpoint:
        if touch.kind in self.by_kind:
            return self.by_kind[touch.kind]
        if touch.form_id is not None and touch.form_id in self.by_form_id:
            return self.by_form_id[touch.form_id]
        return self._by_type(touch.form_type)

    def _by_type(self, form_type: str | None) -> FirstTouchpoint:
        if not form_type:
            return FirstTouchpoint.OTHER
        normalised = _normalise_type(form_type)
        if normalised in self.by_form_type:
            return self.by_form_type[normalised]
        for word in normalised.split("_"):
            if word in self.by_form_type:
                return self.by_form_type[word]
        return FirstTouchpoint.OTHER

    def lead_source_of(self, touchpoint: FirstTouchpoint) -> LeadSource:
        return self.lead_source_by_touchpoint.get(touchpoint, LeadSource.INBOUND)


DEFAULT_TOUCHPOINT_RULES = TouchpointRules()


def _normalise_type(form_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", form_type.strip().lower()).strip("_")


_LEAD_SOURCE_ALIASES: Mapping[str, LeadSource] = {
    **{_normalise_type(source.value): source for source in LeadSource},
    "sdr": LeadSource.SDR_CREATED,
    "ae": LeadSource.AE_CREATED,
    "referrals": LeadSource.REFERRAL,
    "feedback": LeadSource.FEEDBACK_FORM,
}


def parse_lead_source(value: str | None) -> LeadSource | None:
    """A CRM's Lead Source value in our vocabulary; anything unknown is ``Other``."""
    if value is None or not value.strip():
        return None
    return _LEAD_SOURCE_ALIASES.get(_normalise_type(value), LeadSource.OTHER)


def first_touch(touches: Iterable[GatedTouch]) -> GatedTouch | None:
    """The earliest gated interaction; ties by id so every replay picks the same one."""
    return min(touches, key=lambda t: (t.occurred_at, t.touch_id), default=None)


def first_touchpoint(
    touches: Iterable[GatedTouch], rules: TouchpointRules = DEFAULT_TOUCHPOINT_RULES
) -> FirstTouchpoint:
    """The touchpoint of the earliest gated interaction; ``Uncategorized`` without one
    (an outbound lead until its first form)."""
    earliest = first_touch(touches)
    return FirstTouchpoint.UNCATEGORIZED if earliest is None else rules.touchpoint_of(earliest)


def _creation_source(created: PersonCreated | None) -> LeadSource | None:
    if created is None:
        return None
    if created.created_by_role is not None:
        return ROLE_LEAD_SOURCE[created.created_by_role]
    return parse_lead_source(created.lead_source)


def _source_by_creation(
    created: PersonCreated | None, earliest: GatedTouch | None
) -> LeadSource | None:
    """The creation's source when the creation is the origin: it says something and
    came strictly first (at the same instant, the form created the record)."""
    source = _creation_source(created)
    if source is None or created is None:
        return None
    if earliest is not None and created.occurred_at >= earliest.occurred_at:
        return None
    return source


def lead_source(
    created: PersonCreated | None,
    touches: Iterable[GatedTouch],
    rules: TouchpointRules = DEFAULT_TOUCHPOINT_RULES,
) -> LeadSource:
    """Where the person originated: the earliest of the record's creation (a rep's,
    or a source the CRM gives) and the first gated interaction."""
    earliest = first_touch(touches)
    by_creation = _source_by_creation(created, earliest)
    if by_creation is not None:
        return by_creation
    if earliest is not None:
        return rules.lead_source_of(rules.touchpoint_of(earliest))
    return LeadSource.OTHER


def first_page_seen(
    touches: Sequence[GatedTouch], earliest: GatedTouch | None
) -> tuple[str | None, str | None]:
    """The first page the person was seen on and its referrer: as a sender that tracks
    visits tells it (the earliest touch that carries it: a later merge of records may
    change it), else the page and referrer of the person's first gated interaction."""
    told = [t for t in touches if t.first_page_url or t.first_referrer]
    if told:
        first = min(told, key=lambda t: (t.occurred_at, t.touch_id))
        return first.first_page_url, first.first_referrer
    return (earliest.page_url, earliest.referrer) if earliest else (None, None)


@dataclass(frozen=True)
class PersonAttribution:
    lead_source: LeadSource
    first_touchpoint: FirstTouchpoint
    first_touch_id: str | None
    first_touch_at: datetime | None
    original_source: SourceBucket
    first_url: str | None
    first_referrer: str | None


def attribute_person(
    created: PersonCreated | None,
    touches: Iterable[GatedTouch],
    rules: TouchpointRules = DEFAULT_TOUCHPOINT_RULES,
    bucket_rules: SourceBucketRules = DEFAULT_BUCKET_RULES,
) -> PersonAttribution:
    """Lead Source, First Touchpoint and Original Source of one person, together."""
    touches = tuple(touches)
    earliest = first_touch(touches)
    by_creation = _source_by_creation(created, earliest)
    # A record that existed in the CRM before any tracked interaction is offline.
    offline = by_creation is not None and by_creation is not LeadSource.INBOUND
    first_url, first_referrer = first_page_seen(touches, earliest)
    bucket = original_source(
        first_url,
        first_referrer,
        created_offline=offline,
        offline_detail=created.offline_detail if created else None,
        rules=bucket_rules,
    )
    return PersonAttribution(
        lead_source=lead_source(created, touches, rules),
        first_touchpoint=first_touchpoint(touches, rules),
        first_touch_id=earliest.touch_id if earliest else None,
        first_touch_at=earliest.occurred_at if earliest else None,
        original_source=bucket,
        first_url=first_url,
        first_referrer=first_referrer,
    )


__all__ = [
    "OUTBOUND_LEAD_SOURCES",
    "FirstTouchpoint",
    "GatedTouch",
    "LeadSource",
    "OriginalSource",
    "PersonAttribution",
    "PersonCreated",
    "RepRole",
    "TouchKind",
    "TouchpointRules",
    "attribute_person",
    "first_touch",
    "first_touchpoint",
    "lead_source",
    "parse_lead_source",
]
