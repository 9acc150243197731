"""Salesforce -> catalogue events: Outbound Messages (SOAP) and change / platform events
(JSON in the CometD shape, as our relay forwards them).

Both carry records as field -> value; the same readers turn a Lead, Contact, Account,
Opportunity, Task or Event into events, so both paths agree on every field.

Decisions where the sender says nothing:
- An outbound message does not say "created" or "updated": a record whose change time
  (the issue's rule, see ``Record.changed_time``) is its CreatedDate is "created".
- A Website naming no host ("n/a") gives ``domains=[]`` rather than refusing the whole
  message (Salesforce would resend it for 24 h); a Website not sent gives ``None``.
- Another sObject type is refused (422): an outbound message is configured per object,
  so only the misconfigured one is held back.
- CDC GAP_* events and wildcard record ids carry no data: skipped. CometD messages carry
  no organisation id, so their source refs have none. Platform events are published
  only when they carry a lead conversion.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    ActivityLogged,
    ActivityLoggedEvent,
    Envelope,
    LeadConverted,
    LeadConvertedEvent,
    OpportunityChanged,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SourceRef,
    derived_event_id,
)
from revops.events.crm import salesforce_id18
from revops.ingest.domain import values as v
from revops.ingest.domain.errors import MalformedEvent, SenderNotAllowed, UnparsableBody

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
OBJECT_TYPES = ("Lead", "Contact", "Account", "Opportunity", "Task", "Event")


@dataclass(frozen=True)
class CustomFields:
    """API names of the org's custom fields (from configuration)."""

    contract_end: str = "Contract_End_Date__c"
    consultant: str = "Is_Consultant__c"
    sdr_certified: str = "SDR_Certified__c"
    region: str = "Region__c"
    # An account's seats, plan and iACV, for its tier (empty: not read).
    users: str = "Users__c"
    plan: str = "Plan__c"
    iacv: str = "iACV__c"


@dataclass(frozen=True)
class Record:
    """One Salesforce record as a message carries it, with where it came from."""

    object_type: str
    fields: Mapping[str, Any]
    index: int
    event_id: str
    org_id: str | None
    received_at: datetime
    change: str | None = None  # CDC says it; outbound messages do not
    changed_fields: Sequence[str] = field(default_factory=tuple)
    changed_at: datetime | None = None  # CDC's commitTimestamp

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def text(self, name: str) -> str | None:
        return v.text(self.fields.get(name), name, self.index, max_length=4000)

    def ref(self, object_id: str | None = None) -> SourceRef:
        return SourceRef(
            system="salesforce",
            object_type=self.object_type,
            object_id=object_id or self.record_id,
            tenant_id=self.org_id,
        )

    @property
    def record_id(self) -> str:
        return v.required_text(self.fields.get("Id"), "Id", self.index)

    def when(self, *names: str) -> datetime | None:
        for name in names:
            value = self.fields.get(name)
            if value not in (None, ""):
                return v.iso_datetime(value, name, self.index)
        return None

    def changed_time(self) -> datetime:
        """An outbound message has no time of its own: the record's change time is its
        LastModifiedDate, else SystemModstamp, else CreatedDate, else the time received."""
        return (
            self.changed_at
            or self.when("LastModifiedDate", "SystemModstamp", "CreatedDate")
            or self.received_at
        )

    def change_kind(self) -> str:
        if self.change is not None:
            return self.change
        created = self.when("CreatedDate")
        return "created" if created is not None and created == self.changed_time() else "updated"


# --- Outbound Messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundMessage:
    org_id: str
    events: list[Envelope]
    notifications: int


def org_allowed(org_id: str, allowed: Sequence[str]) -> bool:
    """15- and 18-character ids name the same org: compare the first 15 (case matters)."""
    return any(org_id[:15] == candidate.strip()[:15] for candidate in allowed if candidate)


def source_allowed(address: str | None, networks: Sequence[str]) -> bool:
    if not networks:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def parse_outbound(
    body: bytes,
    *,
    allowed_orgs: Sequence[str],
    custom: CustomFields,
    received_at: datetime,
    max_notifications: int = 100,
) -> OutboundMessage:
    root = _parse_xml(body)
    notifications = _find(root, "notifications")
    if notifications is None:
        raise MalformedEvent("notifications", "no notifications element in the SOAP body")
    org_id = _child_text(notifications, "OrganizationId")
    if not org_id:
        raise MalformedEvent("OrganizationId", "is required")
    if not org_allowed(org_id, allowed_orgs):
        raise SenderNotAllowed(f"organisation {org_id[:15]} is not allowed")
    items = [c for c in notifications if _local(c.tag) == "Notification"]
    if len(items) > max_notifications:
        raise MalformedEvent(
            "Notification", f"{len(items)} notifications, at most {max_notifications}"
        )
    events: list[Envelope] = []
    for index, item in enumerate(items):
        notification_id = _child_text(item, "Id")
        if not notification_id:
            raise MalformedEvent("Notification.Id", "is required", index)
        sobject = next((c for c in item if _local(c.tag) == "sObject"), None)
        if sobject is None:
            raise MalformedEvent("Notification.sObject", "is required", index)
        object_type = (sobject.get(f"{XSI}type") or "").rpartition(":")[2]
        record = Record(
            object_type=object_type,
            fields=_sobject_fields(sobject),
            index=index,
            event_id=f"salesforce:{notification_id}",
            org_id=org_id,
            received_at=received_at,
        )
        events.extend(record_events(record, custom))
    return OutboundMessage(org_id=org_id, events=events, notifications=len(items))


def _parse_xml(body: bytes) -> ET.Element:
    try:
        # No DTD at all: a SOAP message never has one, and it is where entity bombs and
        # external entities live.
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise UnparsableBody(f"forbidden XML construct: {exc.__class__.__name__}") from None
    except ET.ParseError as exc:
        raise UnparsableBody(f"not well-formed XML: {exc}") from None
    return root


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip() or None
    return None


def _sobject_fields(sobject: ET.Element) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for child in sobject:
        if len(child):
            continue  # a related record (sf:Account inside an Opportunity): not ours
        nil = child.get(f"{XSI}nil") == "true"
        fields[_local(child.tag)] = None if nil else (child.text or "").strip()
    return fields


# --- change and platform events (CometD JSON) ----------------------------------------------------


def parse_stream_events(
    body: Any, *, custom: CustomFields, received_at: datetime, max_events: int = 100
) -> list[Envelope]:
    """One CometD message or a JSON array of them: change events (``ChangeEventHeader``)
    and platform events (``/event/...``)."""
    messages = body if isinstance(body, list) else [body]
    if len(messages) > max_events:
        raise MalformedEvent("body", f"{len(messages)} messages, at most {max_events}")
    events: list[Envelope] = []
    for index, message in enumerate(messages):
        events.extend(_stream_message(message, index, custom, received_at))
    return events


def _stream_message(
    message: Any, index: int, custom: CustomFields, received_at: datetime
) -> list[Envelope]:
    if not isinstance(message, dict):
        raise MalformedEvent("message", "expected a JSON object", index)
    data = message.get("data", message)
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise MalformedEvent("data.payload", "expected a JSON object", index)
    payload: dict[str, Any] = data["payload"]
    header = payload.get("ChangeEventHeader")
    if header is not None:
        return _change_event(header, payload, index, custom, received_at)
    return _platform_event(message, data, payload, index, received_at)


_CHANGES = {"CREATE": "created", "UPDATE": "updated", "DELETE": "deleted", "UNDELETE": "updated"}


def _change_event(
    header: Any,
    payload: dict[str, Any],
    index: int,
    custom: CustomFields,
    received_at: datetime,
) -> list[Envelope]:
    if not isinstance(header, dict):
        raise MalformedEvent("ChangeEventHeader", "expected a JSON object", index)
    entity = v.required_text(header.get("entityName"), "ChangeEventHeader.entityName", index)
    change_type = v.required_text(header.get("changeType"), "ChangeEventHeader.changeType", index)
    change = _CHANGES.get(change_type.upper())
    if change is None:
        return []  # GAP_* events say data is missing: nothing to publish as a fact
    record_ids = header.get("recordIds")
    if not isinstance(record_ids, list) or not record_ids:
        raise MalformedEvent("ChangeEventHeader.recordIds", "expected a list of ids", index)
    committed = v.epoch_ms(
        header.get("commitTimestamp"), "ChangeEventHeader.commitTimestamp", index
    )
    transaction = v.required_text(
        header.get("transactionKey"), "ChangeEventHeader.transactionKey", index
    )
    sequence = v.required_text(
        header.get("sequenceNumber"), "ChangeEventHeader.sequenceNumber", index
    )
    changed = header.get("changedFields") or []
    if not isinstance(changed, list) or not all(isinstance(f, str) for f in changed):
        # Pub/Sub sends hex bitmaps; our relay must forward the CometD names.
        raise MalformedEvent("ChangeEventHeader.changedFields", "expected field names", index)
    fields = {k: val for k, val in payload.items() if k != "ChangeEventHeader"}
    events: list[Envelope] = []
    for record_id in record_ids:
        rid = v.required_text(record_id, "ChangeEventHeader.recordIds", index)
        if rid.endswith("*"):
            continue  # a wildcard names no record
        record = Record(
            object_type=entity,
            fields={**fields, "Id": rid},
            index=index,
            event_id="salesforce:" + derived_event_id("salesforce-cdc", transaction, sequence, rid),
            org_id=None,
            received_at=received_at,
            change=change,
            changed_fields=changed,
            changed_at=committed,
        )
        events.extend(record_events(record, custom))
    return events


def _platform_event(
    message: dict[str, Any],
    data: dict[str, Any],
    payload: dict[str, Any],
    index: int,
    received_at: datetime,
) -> list[Envelope]:
    """A platform event is ours to define; one that carries a lead conversion
    (``ConvertedAccountId`` with the lead's id, custom ``__c`` names accepted) is one."""
    fields = {k.removesuffix("__c"): val for k, val in payload.items()}
    if not fields.get("ConvertedAccountId"):
        return []
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    assert isinstance(event, dict)
    uuid = v.text(event.get("EventUuid"), "event.EventUuid", index)
    replay = v.text(event.get("replayId"), "event.replayId", index)
    channel = v.text(message.get("channel"), "channel", index) or ""
    if uuid:
        stable = derived_event_id("salesforce-pe", uuid)
    elif replay:
        stable = derived_event_id("salesforce-pe", channel, replay)
    else:
        raise MalformedEvent("event.EventUuid", "is required", index)
    lead_id = v.pick(fields, "LeadId", "Lead", "Id")
    record = Record(
        object_type="Lead",
        fields={**fields, "Id": lead_id, "IsConverted": True},
        index=index,
        event_id=f"salesforce:{stable}",
        org_id=None,
        received_at=received_at,
        change="updated",
        changed_at=(
            v.iso_datetime(fields["CreatedDate"], "CreatedDate", index)
            if fields.get("CreatedDate")
            else None
        ),
    )
    conversion = _lead_conversion(record)
    return [conversion] if conversion is not None else []


# --- records -> events ----------------------------------------------------------------------


def id18_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The record with every id in its 18-character form (``Id``, ``OwnerId``,
    ``AccountId``, ...): a formula or an email template can send the 15-character form,
    and ids are compared as text everywhere downstream."""
    return {
        name: salesforce_id18(value)
        if isinstance(value, str) and name.endswith("Id") and _ID15.match(value)
        else value
        for name, value in fields.items()
    }


_ID15 = re.compile(r"^[a-zA-Z0-9]{15}$")


def record_events(record: Record, custom: CustomFields) -> list[Envelope]:
    record = replace(record, fields=id18_fields(record.fields))
    match record.object_type:
        case "Lead" | "Contact":
            events: list[Envelope] = [_person(record, custom)]
            if record.object_type == "Lead":
                conversion = _lead_conversion(record)
                if conversion is not None:
                    events.append(conversion)
            return events
        case "Account":
            return [_account(record, custom)]
        case "Opportunity":
            return [_opportunity(record, custom)]
        case "Task" | "Event":
            return [_activity(record)]
    raise MalformedEvent(
        "sObject type",
        f"{record.object_type or 'none'} is not one of {', '.join(OBJECT_TYPES)}",
        record.index,
    )


def _optional_bool(record: Record, name: str) -> bool | None:
    value = record.get(name)
    return None if value in (None, "") else v.boolean(value, name, record.index)


def _person(record: Record, custom: CustomFields) -> Envelope:
    kind = record.change_kind()
    created_at = record.when("CreatedDate") or (record.changed_at if kind == "created" else None)
    email = v.email(record.get("Email"), "Email", record.index)
    return v.build_event(
        PersonChangedEvent,
        id=record.event_id,
        source="salesforce",
        occurred_at=record.changed_time(),
        received_at=record.received_at,
        index=record.index,
        payload=lambda: PersonChanged(
            person_type="lead" if record.object_type == "Lead" else "contact",
            change=kind,
            source_ref=record.ref(),
            email=email,
            first_name=record.text("FirstName"),
            last_name=record.text("LastName"),
            company=record.text("Company"),
            country=record.text("Country") or record.text("MailingCountry"),
            lead_source=record.text("LeadSource"),
            status=record.text("Status"),
            owner_id=record.text("OwnerId"),
            account_id=record.text("AccountId"),
            created_at=created_at,
            created_by_id=record.text("CreatedById"),
            is_consultant=_optional_bool(record, custom.consultant),
            region=record.text(custom.region),
            changed_fields=list(record.changed_fields),
        ),
    )


def _lead_conversion(record: Record) -> Envelope | None:
    """A converted lead: IsConverted with the account it became (CDC sends these fields in
    the Lead UPDATE of the conversion; an outbound message in the lead's notification)."""
    converted = _optional_bool(record, "IsConverted")
    account_id = record.text("ConvertedAccountId")
    if not converted or not account_id:
        return None
    lead_id = record.record_id
    converted_on = record.get("ConvertedDate")
    occurred_at = record.changed_time()
    if record.changed_at is None and converted_on and not record.when("LastModifiedDate"):
        day = v.iso_date(converted_on, "ConvertedDate", record.index)
        occurred_at = datetime.combine(day, time(), UTC)
    email = v.email(record.get("Email"), "Email", record.index)
    return v.build_event(
        LeadConvertedEvent,
        id=record.event_id + ":converted",
        source="salesforce",
        occurred_at=occurred_at,
        received_at=record.received_at,
        index=record.index,
        payload=lambda: LeadConverted(
            lead_id=lead_id,
            account_id=account_id,
            contact_id=record.text("ConvertedContactId"),
            opportunity_id=record.text("ConvertedOpportunityId"),
            email=email,
            owner_id=record.text("OwnerId"),
            source_ref=record.ref(lead_id),
        ),
    )


def _account(record: Record, custom: CustomFields) -> Envelope:
    website = record.text("Website")
    has_website = "Website" in record.fields
    kind = record.change_kind()
    return v.build_event(
        AccountChangedEvent,
        id=record.event_id,
        source="salesforce",
        occurred_at=record.changed_time(),
        received_at=record.received_at,
        index=record.index,
        payload=lambda: AccountChanged(
            account_id=record.record_id,
            change=kind,
            source_ref=record.ref(),
            name=record.text("Name"),
            domains=v.domains_of_website(website) if has_website else None,
            website=website,
            owner_id=record.text("OwnerId"),
            country=record.text("BillingCountry"),
            region=record.text(custom.region),
            users=_optional_int(record, custom.users),
            plan=record.text(custom.plan) if custom.plan else None,
            iacv=_optional_money(record, custom.iacv),
            created_at=record.when("CreatedDate"),
            changed_fields=list(record.changed_fields),
        ),
    )


def _optional_int(record: Record, name: str) -> int | None:
    value = record.get(name) if name else None
    if value in (None, ""):
        return None
    amount = v.money(value, name, record.index)
    if amount != amount.to_integral_value():
        raise MalformedEvent(name, f"expected a whole number, got {value!r}", record.index)
    return int(amount)


def _optional_money(record: Record, name: str) -> Any:
    value = record.get(name) if name else None
    return None if value in (None, "") else v.money(value, name, record.index)


def _opportunity(record: Record, custom: CustomFields) -> Envelope:
    i = record.index
    amount = record.get("Amount")
    close = record.get("CloseDate")
    contract_end = record.get(custom.contract_end)
    kind = record.change_kind()
    return v.build_event(
        OpportunityChangedEvent,
        id=record.event_id,
        source="salesforce",
        occurred_at=record.changed_time(),
        received_at=record.received_at,
        index=i,
        payload=lambda: OpportunityChanged(
            opportunity_id=record.record_id,
            change=kind,
            source_ref=record.ref(),
            account_id=record.text("AccountId"),
            name=record.text("Name"),
            stage=record.text("StageName"),
            amount=None if amount in (None, "") else v.money(amount, "Amount", i),
            close_date=None if close in (None, "") else v.iso_date(close, "CloseDate", i),
            contract_end_date=(
                None
                if contract_end in (None, "")
                else v.iso_date(contract_end, custom.contract_end, i)
            ),
            owner_id=record.text("OwnerId"),
            pipeline=record.text("Pipeline__c"),
            opportunity_type=record.text("Type"),
            forecast_category=record.text("ForecastCategoryName")
            or record.text("ForecastCategory"),
            lead_source=record.text("LeadSource"),
            is_closed=_optional_bool(record, "IsClosed"),
            is_won=_optional_bool(record, "IsWon"),
            created_at=record.when("CreatedDate"),
            created_by_id=record.text("CreatedById"),
            contact_id=record.text("ContactId"),
            campaign_id=record.text("CampaignId"),
            changed_fields=list(record.changed_fields),
        ),
    )


_TASK_KINDS = {"email": "email", "listemail": "email", "call": "call", "task": "task"}


def _activity(record: Record) -> Envelope:
    """A Task or Event: a touch, which happened at its CreatedDate, else its
    ActivityDate (a day: midnight UTC), else when received."""
    i = record.index
    if record.object_type == "Event":
        kind = "meeting"
    else:
        subtype = (record.text("TaskSubtype") or record.text("Type") or "task").lower()
        kind = _TASK_KINDS.get(subtype.replace(" ", ""), "other")
    occurred_at = record.when("CreatedDate")
    if occurred_at is None and record.get("ActivityDate") not in (None, ""):
        day = v.iso_date(record.get("ActivityDate"), "ActivityDate", i)
        occurred_at = datetime.combine(day, time(), UTC)
    who = record.text("WhoId") or ""
    what = record.text("WhatId") or ""
    account = record.text("AccountId") or (what if what.startswith("001") else None)
    email = v.email(record.get("Email"), "Email", i)
    return v.build_event(
        ActivityLoggedEvent,
        id=record.event_id,
        source="salesforce",
        occurred_at=occurred_at or record.changed_at or record.received_at,
        received_at=record.received_at,
        index=i,
        payload=lambda: ActivityLogged(
            activity_id=record.record_id,
            kind=kind,
            source_ref=record.ref(),
            rep_id=record.text("OwnerId"),
            lead_id=who if who.startswith("00Q") else None,
            contact_id=who if who.startswith("003") else None,
            account_id=account,
            email=email,
            subject=record.text("Subject"),
        ),
    )


# --- records as the REST API lists them (the backfill) ------------------------------------------


def listed_record_events(
    object_type: str,
    fields: Any,
    *,
    org_id: str | None,
    received_at: datetime,
    index: int,
    custom: CustomFields,
) -> list[Envelope]:
    """A record as a REST query returns it -> the events an outbound message of the same
    record gives (the same readers). The event is the record as it was at its
    SystemModstamp: its id derives from the record and that time, so listing it again
    gives the same event. An OpportunityHistory row is its opportunity's stage at the
    time of the row."""
    if not isinstance(fields, dict):
        raise MalformedEvent("record", "expected a JSON object", index)
    values = {k: val for k, val in fields.items() if k != "attributes"}
    record_id = v.required_text(values.get("Id"), "Id", index)
    stamp = v.text(
        values.get("SystemModstamp") or values.get("CreatedDate"), "SystemModstamp", index
    )
    event_id = "salesforce:" + derived_event_id(
        "salesforce-record", object_type, salesforce_id18(record_id), stamp or ""
    )
    if object_type == "OpportunityHistory":
        opportunity = values.get("Opportunity")
        account = opportunity.get("AccountId") if isinstance(opportunity, dict) else None
        record = Record(
            object_type="Opportunity",
            fields={
                "Id": values.get("OpportunityId"),
                "StageName": values.get("StageName"),
                "AccountId": account,
            },
            index=index,
            event_id=event_id,
            org_id=org_id,
            received_at=received_at,
            change="updated",
            changed_fields=("StageName",),
            changed_at=v.iso_datetime(values.get("CreatedDate"), "CreatedDate", index),
        )
        return record_events(record, custom)
    record = Record(
        object_type=object_type,
        fields=values,
        index=index,
        event_id=event_id,
        org_id=org_id,
        received_at=received_at,
    )
    return record_events(record, custom)
