"""The event catalogue: one envelope for every event, a typed payload per event type.

An event's ``type`` decides its payload model, its topic and its partition key, all in
this module, so producers and consumers can never disagree about them.  Payload fields
that a sender did not send are ``None``: change events (Salesforce CDC updates, HubSpot
property changes) carry only what changed, and consumers merge what is present.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
)

from revops.events import topics
from revops.events.topics import TopicSpec
from revops.events.working_hours import WorkingHours

SCHEMA_VERSION = 1

Source = Literal["hubspot", "salesforce", "product", "router", "attribution", "renewals"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError(f"not an email address: {value[:80]!r}")
    return email


def as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Email = Annotated[str, AfterValidator(normalise_email)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]


class Model(BaseModel):
    # Consumers ignore fields they do not know yet, so a producer can add one without
    # sending every older consumer's events to the dead-letter queue.
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class SourceRef(Model):
    """Where a record lives in the sender's system."""

    system: Literal["hubspot", "salesforce", "product"]
    object_type: str  # e.g. "contact", "Lead", "Opportunity", "user"
    object_id: str
    tenant_id: str | None = None  # HubSpot portal id, Salesforce organisation id


# --- payloads from the outside world (written by ingest) ---------------------------------


class FormSubmitted(Model):
    email: Email
    form_id: str | None = None
    form_type: str | None = None  # demo_request, contact, ebook, whitepaper, webinar, ...
    campaign_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    country: str | None = None  # as sent: a name or an ISO code
    # What routing territories may also match on, when the form asks for it.
    state: str | None = Field(default=None, max_length=100)  # state or province
    employees: int | None = Field(default=None, ge=0)  # company size
    segment: str | None = Field(default=None, max_length=100)
    is_consultant: bool = False
    page_url: str | None = None
    referrer: str | None = None
    source_ref: SourceRef | None = None
    # The first page the visitor was seen on and the referrer of that visit, when the
    # sender knows them (HubSpot's hs_analytics_first_url / hs_analytics_first_referrer):
    # where original source comes from, earlier than any form.
    first_page_url: str | None = None
    first_referrer: str | None = None


class SignupCreated(Model):
    user_id: str
    email: Email
    signup_type: Literal["cloud", "install"]
    country: str | None = None
    company: str | None = None
    first_source_url: str | None = None
    referrer: str | None = None
    anonymous_user_id: str | None = None


class PersonChanged(Model):
    """A lead or contact created or changed in a CRM."""

    person_type: Literal["lead", "contact"]
    change: Literal["created", "updated", "deleted", "merged"]
    source_ref: SourceRef
    email: Email | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    country: str | None = None
    lead_source: str | None = None
    status: str | None = None
    owner_id: str | None = None
    account_id: str | None = None
    created_at: UtcDatetime | None = None
    created_by_id: str | None = None
    is_consultant: bool | None = None
    region: str | None = None  # a CRM region field as sent (e.g. a Salesforce custom field)
    merged_ids: list[str] = Field(default_factory=list)
    changed_fields: list[str] = Field(default_factory=list)


class LeadConverted(Model):
    lead_id: str
    account_id: str
    contact_id: str | None = None
    opportunity_id: str | None = None
    email: Email | None = None
    owner_id: str | None = None
    source_ref: SourceRef | None = None


class AccountChanged(Model):
    account_id: str
    change: Literal["created", "updated", "deleted"]
    source_ref: SourceRef
    name: str | None = None
    domains: list[str] | None = None  # lower-case host names, from Website and others
    website: str | None = None
    owner_id: str | None = None
    country: str | None = None  # billing country as sent
    region: str | None = None  # a CRM region field as sent (e.g. a Salesforce custom field)
    users: int | None = None
    plan: str | None = None
    iacv: Decimal | None = None
    created_at: UtcDatetime | None = None
    changed_fields: list[str] = Field(default_factory=list)


class OpportunityChanged(Model):
    opportunity_id: str
    change: Literal["created", "updated", "deleted"]
    source_ref: SourceRef
    account_id: str | None = None
    name: str | None = None
    stage: str | None = None
    amount: Decimal | None = None
    close_date: date | None = None
    contract_end_date: date | None = None
    owner_id: str | None = None
    pipeline: str | None = None
    opportunity_type: str | None = None  # Salesforce Type: New Business, Renewal, ...
    forecast_category: str | None = None
    lead_source: str | None = None
    is_closed: bool | None = None
    is_won: bool | None = None
    created_at: UtcDatetime | None = None
    created_by_id: str | None = None
    contact_id: str | None = None
    campaign_id: str | None = None
    changed_fields: list[str] = Field(default_factory=list)


class ActivityLogged(Model):
    """A touch: an email, call or meeting logged by a rep."""

    activity_id: str
    kind: Literal["email", "call", "meeting", "task", "other"]
    source_ref: SourceRef
    rep_id: str | None = None
    lead_id: str | None = None
    contact_id: str | None = None
    account_id: str | None = None
    email: Email | None = None
    subject: str | None = None


# --- the roster (written by the router's API) ----------------------------------------------

_SAFE_ID = r"^[A-Za-z0-9_.:-]+$"


class RepChanged(Model):
    """A rep created or changed through the router's API, carrying the whole rep as it is
    after the change (not only what changed): the newest change of a rep is its state."""

    change: Literal["created", "updated"]
    id: str = Field(min_length=1, max_length=64, pattern=_SAFE_ID)  # the CRM user id
    role: Literal["SDR", "AE"]
    name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=254)
    region: str | None = Field(default=None, max_length=4)  # AMER, EMEA, APAC
    certified: bool = False
    consultant: bool = False
    active: bool = True
    paused: bool = False
    out_of_office: bool = False
    weight: int = Field(default=1, ge=0, le=2**31 - 1)
    daily_cap: int | None = Field(default=None, ge=0, le=2**31 - 1)
    paired_sdr_id: str | None = Field(default=None, max_length=64)
    # The rep's user in each CRM, for owner write-backs.
    salesforce_user_id: str | None = Field(default=None, max_length=64)
    hubspot_owner_id: str | None = Field(default=None, max_length=64)
    # None: on shift around the clock.
    working_hours: WorkingHours | None = None


class RoutingPolicyChanged(Model):
    """A new routing policy, published by the router's API once validated: the document
    as given (YAML or JSON text). The router numbers the versions in the roster topic's
    order, so every rebuild gives each the same number."""

    document: str = Field(min_length=1, max_length=2_000_000)
    changed_by: str | None = Field(default=None, max_length=200)


class AccountDomainsSet(Model):
    """An admin's whole list of an account's domains; against the CRM's, the newer wins."""

    account_id: str = Field(min_length=1, max_length=64)
    domains: list[str] = Field(max_length=1000)
    changed_by: str | None = Field(default=None, max_length=200)


# --- payloads our services derive (written through their outboxes) -----------------------


class LeadRouted(Model):
    lead_id: str
    email: Email
    owner_id: str | None
    owner_role: Literal["SDR", "AE"] | None
    rule: str
    queue: str | None
    reason: str
    priority: Literal["high", "normal"]
    account_id: str | None = None
    # The rotation slot a round-robin decision took, the account match and the region:
    # the router re-applies recorded decisions when it rebuilds its schema from history.
    turn: int | None = None
    # Where that turn left the rotation's pointer (its round and the place of the rep
    # served), so a rebuild puts the rotation back where it was.
    turn_round: int | None = Field(default=None, ge=0)
    turn_place: int | None = Field(default=None, ge=-1)
    match: str | None = None
    # match company_name: the score (0-100) of the account name the company matched.
    match_score: float | None = Field(default=None, ge=0, le=100)
    region: str | None = None
    review_with_sdr_id: str | None = None
    # The routing policy's version the decision was made under and the territory that
    # matched (None: none did; the account's region or the fallback placed the lead).
    territory: str | None = None
    policy_version: int | None = Field(default=None, ge=0)
    # Set on every decision after a lead's first (routed again once someone became
    # eligible, assigned or re-routed by an admin): the time it was made. A rebuild keeps
    # each lead's latest decision; the first one has none and counts as the earliest.
    decided_at: datetime | None = None
    # The reps the SLA escalation took the lead from so far, in order (rebuilt from it).
    escalated_from: list[str] = Field(default_factory=list)


class LeadAeAssigned(Model):
    """Assign AE on a lead's conversion, as decided: the router re-applies it when it
    rebuilds its schema (an AE round robin depends on the order conversions arrived in)."""

    conversion_id: str  # the lead.converted event decided
    lead_id: str  # the router's lead, else the CRM lead id of a lead it never saw
    account_id: str
    opportunity_id: str | None = None
    ae_id: str | None = None
    rule: str
    reason: str
    sao_sdr_id: str | None = None  # the SDR credited with the SAO
    converted_at: UtcDatetime
    queue: str | None = None
    # The AE rotation's turn and where it left the pointer, as ``lead.routed`` has them.
    turn: int | None = None
    turn_round: int | None = Field(default=None, ge=0)
    turn_place: int | None = Field(default=None, ge=-1)
    source_ref: SourceRef | None = None  # the converted lead in its CRM


class AccountTransferred(Model):
    """An account's owner change as the router applied it, and the open leads it moved to
    the new owner's SDR (none when the SDR stays): a rebuild re-applies it instead of
    moving whichever leads are open when the change is replayed."""

    account_id: str
    change_id: str  # the account.changed event that changed the owner
    transferred_at: UtcDatetime
    previous_owner_id: str | None = None
    owner_id: str
    from_sdr_id: str | None = None
    to_sdr_id: str | None = None
    lead_ids: list[str] = Field(default_factory=list)


class NotificationRequested(Model):
    kind: str  # high_priority_lead, account_transfer, ...
    recipients: list[str]
    message: str
    subject_id: str  # the lead, account or opportunity it is about


class RenewalCreated(Model):
    renewal_id: str
    source_opportunity_id: str
    account_id: str | None
    owner_id: str | None
    amount: Decimal | None
    close_date: date
    status: str


class SnapshotTaken(Model):
    snapshot_id: str
    scheduled_at: UtcDatetime
    as_of: UtcDatetime
    open_pipeline: Decimal
    qualified_pipeline: Decimal


# --- the envelope --------------------------------------------------------------------------


class Envelope(Model):
    id: str = Field(min_length=1, max_length=200)
    type: str
    version: int = SCHEMA_VERSION
    source: Source
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    key: str = Field(min_length=1, max_length=500)
    # Set by ingest on a new lead (a form, a sign-up): the end offsets of the CRM state
    # topics' partitions when it accepted the request (topic -> the end offset of each
    # partition, by partition number). Every CRM change acknowledged before is below them,
    # so the router routes the lead once they are applied (topics.CRM_STATE). None: the
    # router asks Kafka itself.
    state_offsets: (
        dict[
            Annotated[str, Field(min_length=1, max_length=249)],
            Annotated[list[NonNegativeInt], Field(max_length=10_000)],
        ]
        | None
    ) = Field(default=None, max_length=100)

    topic: ClassVar[TopicSpec]

    @classmethod
    def key_of(cls, payload: Any) -> str:
        raise NotImplementedError


def _person_key(email: str | None, ref: SourceRef | None, fallback: str) -> str:
    if email:
        return email
    if ref is not None:
        return f"{ref.system}:{ref.object_type}:{ref.object_id}"
    return fallback


class FormSubmittedEvent(Envelope):
    type: Literal["form.submitted"] = "form.submitted"
    payload: FormSubmitted
    topic = topics.FORMS

    @classmethod
    def key_of(cls, payload: FormSubmitted) -> str:
        return payload.email


class SignupCreatedEvent(Envelope):
    type: Literal["signup.created"] = "signup.created"
    payload: SignupCreated
    topic = topics.SIGNUPS

    @classmethod
    def key_of(cls, payload: SignupCreated) -> str:
        return payload.email


class PersonChangedEvent(Envelope):
    type: Literal["person.changed"] = "person.changed"
    payload: PersonChanged
    topic = topics.PEOPLE

    @classmethod
    def key_of(cls, payload: PersonChanged) -> str:
        return _person_key(payload.email, payload.source_ref, payload.source_ref.object_id)


class LeadConvertedEvent(Envelope):
    type: Literal["lead.converted"] = "lead.converted"
    payload: LeadConverted
    # With the account's opportunities, so a conversion and the opportunity it creates
    # arrive in order.
    topic = topics.OPPORTUNITIES

    @classmethod
    def key_of(cls, payload: LeadConverted) -> str:
        return payload.account_id


class AccountChangedEvent(Envelope):
    type: Literal["account.changed"] = "account.changed"
    payload: AccountChanged
    topic = topics.ACCOUNTS

    @classmethod
    def key_of(cls, payload: AccountChanged) -> str:
        return payload.account_id


class OpportunityChangedEvent(Envelope):
    type: Literal["opportunity.changed"] = "opportunity.changed"
    payload: OpportunityChanged
    topic = topics.OPPORTUNITIES

    @classmethod
    def key_of(cls, payload: OpportunityChanged) -> str:
        # HubSpot deal events name no company; they stay in order per deal instead.
        return payload.account_id or f"opportunity:{payload.opportunity_id}"


class ActivityLoggedEvent(Envelope):
    type: Literal["activity.logged"] = "activity.logged"
    payload: ActivityLogged
    topic = topics.ACTIVITIES

    @classmethod
    def key_of(cls, payload: ActivityLogged) -> str:
        return payload.account_id or payload.email or f"activity:{payload.activity_id}"


class RepChangedEvent(Envelope):
    type: Literal["rep.changed"] = "rep.changed"
    payload: RepChanged
    topic = topics.ROSTER

    @classmethod
    def key_of(cls, payload: RepChanged) -> str:
        return payload.id


class AccountDomainsSetEvent(Envelope):
    type: Literal["account.domains_set"] = "account.domains_set"
    payload: AccountDomainsSet
    # With the reps: an admin's change, applied before the leads that follow it.
    topic = topics.ROSTER

    @classmethod
    def key_of(cls, payload: AccountDomainsSet) -> str:
        return f"account-domains:{payload.account_id}"


class RoutingPolicyChangedEvent(Envelope):
    type: Literal["routing_policy.changed"] = "routing_policy.changed"
    payload: RoutingPolicyChanged
    # With the reps: a policy change is state, applied before the leads that follow it.
    topic = topics.ROSTER

    @classmethod
    def key_of(cls, payload: RoutingPolicyChanged) -> str:
        return "routing-policy"


class LeadRoutedEvent(Envelope):
    type: Literal["lead.routed"] = "lead.routed"
    payload: LeadRouted
    topic = topics.ROUTING

    @classmethod
    def key_of(cls, payload: LeadRouted) -> str:
        return payload.email


class LeadAeAssignedEvent(Envelope):
    type: Literal["lead.ae_assigned"] = "lead.ae_assigned"
    payload: LeadAeAssigned
    topic = topics.ROUTING

    @classmethod
    def key_of(cls, payload: LeadAeAssigned) -> str:
        return payload.account_id


class AccountTransferredEvent(Envelope):
    type: Literal["account.transferred"] = "account.transferred"
    payload: AccountTransferred
    topic = topics.ROUTING

    @classmethod
    def key_of(cls, payload: AccountTransferred) -> str:
        return payload.account_id


class NotificationRequestedEvent(Envelope):
    type: Literal["notification.requested"] = "notification.requested"
    payload: NotificationRequested
    topic = topics.ROUTING

    @classmethod
    def key_of(cls, payload: NotificationRequested) -> str:
        return payload.subject_id


class RenewalCreatedEvent(Envelope):
    type: Literal["renewal.created"] = "renewal.created"
    payload: RenewalCreated
    topic = topics.RENEWALS

    @classmethod
    def key_of(cls, payload: RenewalCreated) -> str:
        return payload.account_id or payload.source_opportunity_id


class SnapshotTakenEvent(Envelope):
    type: Literal["snapshot.taken"] = "snapshot.taken"
    payload: SnapshotTaken
    topic = topics.RENEWALS

    @classmethod
    def key_of(cls, payload: SnapshotTaken) -> str:
        return payload.snapshot_id


Event = Annotated[
    FormSubmittedEvent
    | SignupCreatedEvent
    | PersonChangedEvent
    | LeadConvertedEvent
    | AccountChangedEvent
    | OpportunityChangedEvent
    | ActivityLoggedEvent
    | RepChangedEvent
    | RoutingPolicyChangedEvent
    | AccountDomainsSetEvent
    | LeadRoutedEvent
    | LeadAeAssignedEvent
    | AccountTransferredEvent
    | NotificationRequestedEvent
    | RenewalCreatedEvent
    | SnapshotTakenEvent,
    Field(discriminator="type"),
]

# Every event type of the union above, by its name.
EVENT_CLASSES: dict[str, type[Envelope]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

E = TypeVar("E", bound=Envelope)


def make_event(
    event_class: type[E],
    *,
    id: str,
    source: Source,
    occurred_at: datetime,
    payload: Model,
    received_at: datetime | None = None,
) -> E:
    """Build an event; its key comes from the payload by the event type's own rule.

    ``received_at`` defaults to ``occurred_at`` so that derived events stay a pure
    function of their inputs (replays produce byte-identical events).
    """
    return event_class(
        id=id,
        source=source,
        occurred_at=occurred_at,
        received_at=received_at or occurred_at,
        key=event_class.key_of(payload),
        payload=payload,  # type: ignore[call-arg]
    )


def derived_event_id(*parts: str) -> str:
    """A stable id for an event derived from others, so a replay derives the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
