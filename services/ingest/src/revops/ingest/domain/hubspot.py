"""HubSpot Webhooks API batches -> catalogue events.

A batch is a JSON array of up to 100 notifications. HubSpot's ``eventId`` alone is not
unique, so an event's id is derived from subscription, object, event id and occurredAt
together: a redelivery (``attemptNumber`` > 0) yields the same id. Notifications of a
type the catalogue cannot carry (tickets, removed associations, deal merges) are
skipped, not refused: HubSpot resends a refused batch ten times and then drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from revops.events.catalogue import (
    AccountChanged,
    AccountChangedEvent,
    Envelope,
    OpportunityChanged,
    OpportunityChangedEvent,
    PersonChanged,
    PersonChangedEvent,
    SourceRef,
    derived_event_id,
)
from revops.ingest.domain import values as v
from revops.ingest.domain.errors import MalformedEvent

Handler = Callable[["Notification", datetime, "CompanyProperties"], "Envelope | None"]


@dataclass(frozen=True)
class Notification:
    """The parts of one HubSpot notification every event needs."""

    index: int
    raw: dict[str, Any]
    kind: str  # subscriptionType, e.g. contact.propertyChange
    object_id: str
    portal_id: str | None
    occurred_at: datetime
    event_id: str

    def ref(self, object_type: str, object_id: str | None = None) -> SourceRef:
        return SourceRef(
            system="hubspot",
            object_type=object_type,
            object_id=object_id or self.object_id,
            tenant_id=self.portal_id,
        )


def parse_batch(
    batch: Any,
    *,
    received_at: datetime,
    max_events: int = 100,
    company: CompanyProperties | None = None,
) -> list[Envelope]:
    """A decoded Webhooks API body -> events, oldest first (HubSpot does not promise
    order). Raises MalformedEvent naming the field and the notification's index."""
    if not isinstance(batch, list):
        raise MalformedEvent("body", "expected a JSON array of notifications")
    if len(batch) > max_events:
        raise MalformedEvent("body", f"{len(batch)} notifications, at most {max_events}")
    events: list[Envelope] = []
    for index, raw in enumerate(batch):
        note = _notification(raw, index)
        event = _event(note, received_at, company or CompanyProperties())
        if event is not None:
            events.append(event)
    events.sort(key=lambda e: e.occurred_at)
    return events


def _notification(raw: Any, index: int) -> Notification:
    if not isinstance(raw, dict):
        raise MalformedEvent("notification", "expected a JSON object", index)
    kind = v.required_text(v.pick(raw, "subscriptionType", "eventType"), "subscriptionType", index)
    occurred_at = v.epoch_ms(raw.get("occurredAt"), "occurredAt", index)
    subscription = v.required_text(raw.get("subscriptionId"), "subscriptionId", index)
    event_id = v.required_text(raw.get("eventId"), "eventId", index)
    if "objectId" in raw or not kind.endswith("associationChange"):
        object_id = v.required_text(raw.get("objectId"), "objectId", index)
    else:
        # Association notifications name two objects and no objectId.
        object_id = "{}-{}".format(
            v.required_text(raw.get("fromObjectId"), "fromObjectId", index),
            v.required_text(raw.get("toObjectId"), "toObjectId", index),
        )
    portal = v.text(raw.get("portalId"), "portalId", index)
    stable_id = derived_event_id(
        "hubspot", subscription, object_id, event_id, str(raw.get("occurredAt"))
    )
    return Notification(
        index=index,
        raw=raw,
        kind=kind,
        object_id=object_id,
        portal_id=portal,
        occurred_at=occurred_at,
        event_id=f"hubspot:{stable_id}",
    )


def _event(note: Notification, received_at: datetime, props: CompanyProperties) -> Envelope | None:
    object_type, _, action = note.kind.partition(".")
    handler = _HANDLERS.get((object_type.lower(), action))
    return handler(note, received_at, props) if handler is not None else None


# --- contacts --------------------------------------------------------------------------------


def _contact_property(note: Notification) -> dict[str, Any]:
    name = v.required_text(note.raw.get("propertyName"), "propertyName", note.index)
    return {
        "changed_fields": [name],
        **_contact_fields(name, note.raw.get("propertyValue"), "propertyValue", note.index),
    }


def _contact_fields(name: str, value: Any, field: str, i: int) -> dict[str, Any]:
    """Our fields from one contact property (none from a property we do not read)."""
    fields: dict[str, Any] = {}
    match name:
        case "email":
            fields["email"] = v.email(value, field, i)
        case "firstname":
            fields["first_name"] = v.text(value, field, i)
        case "lastname":
            fields["last_name"] = v.text(value, field, i)
        case "company":
            fields["company"] = v.text(value, field, i)
        case "country":
            fields["country"] = v.text(value, field, i)
        case "hs_lead_status":
            fields["status"] = v.text(value, field, i)
        case "hubspot_owner_id":
            fields["owner_id"] = v.text(value, field, i)
        case "associatedcompanyid":
            fields["account_id"] = v.text(value, field, i)
        case "is_consultant":
            fields["is_consultant"] = None if value in (None, "") else v.boolean(value, field, i)
    return fields


def _contact(change: str) -> Handler:
    def build(note: Notification, received_at: datetime, _props: CompanyProperties) -> Envelope:
        fields: dict[str, Any] = {}
        ref = note.ref("contact")
        if change == "created":
            fields["created_at"] = note.occurred_at
        elif change == "updated":
            fields = _contact_property(note)
        elif change == "merged":
            primary = v.text(
                v.pick(note.raw, "newObjectId", "primaryObjectId"), "primaryObjectId", note.index
            )
            ref = note.ref("contact", primary)
            fields["merged_ids"] = _ids(note.raw.get("mergedObjectIds"), note.index)
        return v.build_event(
            PersonChangedEvent,
            id=note.event_id,
            source="hubspot",
            occurred_at=note.occurred_at,
            received_at=received_at,
            index=note.index,
            payload=lambda: PersonChanged(
                person_type="contact",
                change=change,
                source_ref=ref,
                **fields,
            ),
        )

    return build


def _ids(value: Any, index: int) -> list[str]:
    if not isinstance(value, list):
        raise MalformedEvent("mergedObjectIds", "expected a list of ids", index)
    return [v.required_text(item, "mergedObjectIds", index) for item in value]


# --- deals -----------------------------------------------------------------------------------


def _deal_property(note: Notification) -> dict[str, Any]:
    name = v.required_text(note.raw.get("propertyName"), "propertyName", note.index)
    return {
        "changed_fields": [name],
        **_deal_fields(name, note.raw.get("propertyValue"), "propertyValue", note.index),
    }


def _deal_fields(name: str, value: Any, field: str, i: int) -> dict[str, Any]:
    """Our fields from one deal property (none from a property we do not read)."""
    empty = value is None or value == ""
    fields: dict[str, Any] = {}
    match name:
        case "dealstage":
            fields["stage"] = v.text(value, field, i)
        case "amount":
            fields["amount"] = None if empty else v.money(value, field, i)
        case "closedate":
            fields["close_date"] = None if empty else v.iso_date(value, field, i)
        case "hubspot_owner_id":
            fields["owner_id"] = v.text(value, field, i)
        case "pipeline":
            fields["pipeline"] = v.text(value, field, i)
        case "dealtype":
            fields["opportunity_type"] = v.text(value, field, i)
        case "hs_forecast_category" | "forecast_category":
            fields["forecast_category"] = v.text(value, field, i)
        case "dealname":
            fields["name"] = v.text(value, field, i)
    return fields


def _deal(change: str) -> Handler:
    def build(note: Notification, received_at: datetime, _props: CompanyProperties) -> Envelope:
        fields: dict[str, Any] = {}
        if change == "created":
            fields["created_at"] = note.occurred_at
        elif change == "updated":
            fields = _deal_property(note)
        return _deal_event(note, received_at, change, fields)

    return build


def _deal_event(
    note: Notification,
    received_at: datetime,
    change: str,
    fields: dict[str, Any],
    deal_id: str | None = None,
) -> Envelope:
    deal = deal_id or note.object_id
    return v.build_event(
        OpportunityChangedEvent,
        id=note.event_id,
        source="hubspot",
        occurred_at=note.occurred_at,
        received_at=received_at,
        index=note.index,
        payload=lambda: OpportunityChanged(
            opportunity_id=deal,
            change=change,
            source_ref=note.ref("deal", deal),
            **fields,
        ),
    )


# --- companies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyProperties:
    """Internal names of the company properties an account's tier is decided on (from
    configuration; empty: not read)."""

    users: str = "users"
    plan: str = "plan"
    iacv: str = "iacv"


def _company_fields(
    name: str, raw: Any, field: str, i: int, props: CompanyProperties
) -> dict[str, Any]:
    """Our fields from one company property (none from a property we do not read)."""
    empty = raw is None or raw == ""
    if name and name == props.users:
        return {"users": None if empty else _whole(raw, field, i)}
    if name and name == props.iacv:
        return {"iacv": None if empty else v.money(raw, field, i)}
    value = v.text(raw, field, i)
    if name and name == props.plan:
        return {"plan": value}
    match name:
        case "name":
            return {"name": value}
        case "domain" | "website":
            return {"website": value, "domains": v.domains_of_website(value)}
        case "hubspot_owner_id":
            return {"owner_id": value}
        case "country":
            return {"country": value}
    return {}


def _whole(raw: Any, field: str, i: int) -> int:
    amount = v.money(raw, field, i)
    if amount != amount.to_integral_value():
        raise MalformedEvent(field, f"expected a whole number, got {raw!r}", i)
    return int(amount)


def _company(change: str) -> Handler:
    def build(note: Notification, received_at: datetime, props: CompanyProperties) -> Envelope:
        fields: dict[str, Any] = {}
        if change == "created":
            fields["created_at"] = note.occurred_at
        elif change == "updated":
            name = v.required_text(note.raw.get("propertyName"), "propertyName", note.index)
            fields["changed_fields"] = [name]
            fields.update(
                _company_fields(
                    name, note.raw.get("propertyValue"), "propertyValue", note.index, props
                )
            )
        return v.build_event(
            AccountChangedEvent,
            id=note.event_id,
            source="hubspot",
            occurred_at=note.occurred_at,
            received_at=received_at,
            index=note.index,
            payload=lambda: AccountChanged(
                account_id=note.object_id,
                change=change,
                source_ref=note.ref("company"),
                **fields,
            ),
        )

    return build


# --- associations ------------------------------------------------------------------------------


def _association(
    note: Notification, received_at: datetime, _props: CompanyProperties
) -> Envelope | None:
    """Company of a contact, company or contact of a deal. A removed association is
    skipped: the catalogue's change events cannot say "no longer" (consumers merge what
    is present)."""
    raw, i = note.raw, note.index
    if v.boolean(raw.get("associationRemoved", False), "associationRemoved", i):
        return None
    kind = (v.text(raw.get("associationType"), "associationType", i) or "").upper()
    source = v.required_text(raw.get("fromObjectId"), "fromObjectId", i)
    target = v.required_text(raw.get("toObjectId"), "toObjectId", i)
    changed = ["associations." + kind.lower()]
    # HubSpot sends both directions of one association; each becomes the same fact.
    if kind in ("COMPANY_TO_CONTACT", "CONTACT_TO_DEAL", "COMPANY_TO_DEAL"):
        source, target = target, source
        kind = "_TO_".join(reversed(kind.split("_TO_")))
    if kind == "CONTACT_TO_COMPANY":
        return v.build_event(
            PersonChangedEvent,
            id=note.event_id,
            source="hubspot",
            occurred_at=note.occurred_at,
            received_at=received_at,
            index=i,
            payload=lambda: PersonChanged(
                person_type="contact",
                change="updated",
                source_ref=note.ref("contact", source),
                account_id=target,
                changed_fields=changed,
            ),
        )
    if kind == "DEAL_TO_COMPANY":
        return _deal_event(
            note, received_at, "updated", {"account_id": target, "changed_fields": changed}, source
        )
    if kind == "DEAL_TO_CONTACT":
        return _deal_event(
            note, received_at, "updated", {"contact_id": target, "changed_fields": changed}, source
        )
    return None


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("contact", "creation"): _contact("created"),
    ("contact", "propertyChange"): _contact("updated"),
    ("contact", "deletion"): _contact("deleted"),
    ("contact", "merge"): _contact("merged"),
    ("contact", "associationChange"): _association,
    ("deal", "creation"): _deal("created"),
    ("deal", "propertyChange"): _deal("updated"),
    ("deal", "deletion"): _deal("deleted"),
    ("deal", "associationChange"): _association,
    ("company", "associationChange"): _association,
    ("company", "creation"): _company("created"),
    ("company", "propertyChange"): _company("updated"),
    ("company", "deletion"): _company("deleted"),
}

SUPPORTED_TYPES: Sequence[str] = sorted(f"{o}.{a}" for o, a in _HANDLERS)


# --- CRM objects as the API lists them (the backfill) -----------------------------------------


def object_events(
    kind: str,
    obj: Any,
    *,
    received_at: datetime,
    index: int,
    company: CompanyProperties | None = None,
) -> list[Envelope]:
    """A company, contact or deal as ``/crm/v3/objects/{kind}`` lists it -> the events a
    webhook of the same record gives, read with the same property mapping. The event is
    the record as it was at ``updatedAt``: its id derives from the object and that time,
    so listing it again gives the same event. A deal's ``dealstage`` history (with
    ``propertiesWithHistory``) gives one change per stage it was in."""
    if not isinstance(obj, dict):
        raise MalformedEvent("result", "expected a JSON object", index)
    object_id = v.required_text(obj.get("id"), "id", index)
    properties = obj.get("properties")
    if not isinstance(properties, dict):
        raise MalformedEvent("properties", "expected a JSON object", index)
    updated = v.iso_datetime(obj.get("updatedAt"), "updatedAt", index)
    created = v.iso_datetime(obj.get("createdAt"), "createdAt", index)
    change = (
        "deleted" if obj.get("archived") is True else "created" if created == updated else "updated"
    )
    note = Notification(
        index=index,
        raw=obj,
        kind=f"{kind}.backfill",
        object_id=object_id,
        portal_id=None,
        occurred_at=updated,
        event_id="hubspot:" + derived_event_id("hubspot-object", kind, object_id, str(updated)),
    )
    fields: dict[str, Any] = {"created_at": created}
    match kind:
        case "companies":
            props = company or CompanyProperties()
            for name, value in properties.items():
                fields.update(_company_fields(name, value, f"properties.{name}", index, props))
            return [_account_event(note, received_at, change, fields)]
        case "contacts":
            for name, value in properties.items():
                fields.update(_contact_fields(name, value, f"properties.{name}", index))
            return [_person_event(note, received_at, change, fields)]
        case "deals":
            for name, value in properties.items():
                fields.update(_deal_fields(name, value, f"properties.{name}", index))
            account = _first_association(obj, "companies", index)
            if account is not None:
                fields["account_id"] = account
            return [
                _deal_event(note, received_at, change, fields),
                *_stage_history(note, received_at, obj, account),
            ]
    raise MalformedEvent("kind", f"{kind} is not companies, contacts or deals", index)


def _account_event(
    note: Notification, received_at: datetime, change: str, fields: dict[str, Any]
) -> Envelope:
    return v.build_event(
        AccountChangedEvent,
        id=note.event_id,
        source="hubspot",
        occurred_at=note.occurred_at,
        received_at=received_at,
        index=note.index,
        payload=lambda: AccountChanged(
            account_id=note.object_id, change=change, source_ref=note.ref("company"), **fields
        ),
    )


def _person_event(
    note: Notification, received_at: datetime, change: str, fields: dict[str, Any]
) -> Envelope:
    return v.build_event(
        PersonChangedEvent,
        id=note.event_id,
        source="hubspot",
        occurred_at=note.occurred_at,
        received_at=received_at,
        index=note.index,
        payload=lambda: PersonChanged(
            person_type="contact", change=change, source_ref=note.ref("contact"), **fields
        ),
    )


def _first_association(obj: dict[str, Any], kind: str, index: int) -> str | None:
    associations = obj.get("associations")
    if not isinstance(associations, dict) or kind not in associations:
        return None
    results = associations[kind].get("results") if isinstance(associations[kind], dict) else None
    if not isinstance(results, list):
        raise MalformedEvent(f"associations.{kind}.results", "expected a list", index)
    ids = [r.get("id") for r in results if isinstance(r, dict)]
    return v.text(ids[0], f"associations.{kind}.results.id", index) if ids else None


def _stage_history(
    note: Notification, received_at: datetime, obj: dict[str, Any], account: str | None
) -> list[Envelope]:
    history = (obj.get("propertiesWithHistory") or {}).get("dealstage") or []
    if not isinstance(history, list):
        raise MalformedEvent("propertiesWithHistory.dealstage", "expected a list", note.index)
    events: list[Envelope] = []
    for entry in history:
        if not isinstance(entry, dict):
            raise MalformedEvent("propertiesWithHistory.dealstage", "expected objects", note.index)
        at = v.iso_datetime(entry.get("timestamp"), "dealstage.timestamp", note.index)
        stage = v.text(entry.get("value"), "dealstage.value", note.index)
        moment = replace(
            note,
            occurred_at=at,
            event_id="hubspot:"
            + derived_event_id("hubspot-stage", note.object_id, str(at), stage or ""),
        )
        fields: dict[str, Any] = {"stage": stage, "changed_fields": ["dealstage"]}
        if account is not None:
            fields["account_id"] = account
        events.append(_deal_event(moment, received_at, "updated", fields))
    return events
