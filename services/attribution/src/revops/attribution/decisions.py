"""Recompute stored decisions from stored facts: load, decide with the domain, store.

Runs inside the consumer's batch transaction, just before it commits (see
consumer.py), with a synchronous view of the same session: the facts of the batch are
already written, and every person and opportunity they touch is decided again from
everything known, so the order events arrived in never matters.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Column,
    CompoundSelect,
    DateTime,
    Interval,
    RowMapping,
    Select,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from revops.attribution import models
from revops.attribution.domain.influence import (
    AttributionModel,
    CampaignInfluence,
    CampaignTouch,
    InfluencePolicy,
    campaign_influence,
)
from revops.attribution.domain.lead_source import (
    GatedTouch,
    LeadSource,
    PersonCreated,
    RepRole,
    TouchKind,
    TouchpointRules,
    attribute_person,
)
from revops.attribution.domain.opportunity_source import (
    AccountContact,
    ConvertedLead,
    OpportunitySourceDecision,
    OpportunitySourcePolicy,
    opportunity_source,
)
from revops.attribution.domain.original_source import SourceBucketRules
from revops.attribution.figures import count_decisions
from revops.attribution.settings import AttributionSettings
from revops.events import bulk
from revops.events.db import one_of

log = logging.getLogger(__name__)

NO_CAMPAIGN = "(no campaign)"


@dataclass(frozen=True)
class Rules:
    """Everything configurable the decisions depend on, built once from the settings."""

    touchpoints: TouchpointRules
    buckets: SourceBucketRules
    opportunity_source: OpportunitySourcePolicy
    influence: InfluencePolicy
    rep_roles: Mapping[str, RepRole]

    @classmethod
    def from_settings(cls, settings: AttributionSettings) -> Rules:
        return cls(
            touchpoints=settings.touchpoint_rules(),
            buckets=settings.bucket_rules(),
            opportunity_source=settings.opportunity_source_policy(),
            influence=settings.influence_policy(),
            rep_roles=dict(settings.rep_roles),
        )


def _without_field_times(table: Table) -> list[Column[Any]]:
    """The decisions read facts and decisions, never the facts' stamps (JSON to decode)."""
    return [c for c in table.c if c.name != "field_times"]


# --- people ------------------------------------------------------------------------------


def _gated_touch(row: RowMapping) -> GatedTouch:
    return GatedTouch(
        touch_id=row["touch_id"],
        kind=TouchKind(row["kind"]),
        occurred_at=row["occurred_at"],
        form_id=row["form_id"],
        form_type=row["form_type"],
        campaign_id=row["campaign_id"],
        page_url=row["page_url"],
        referrer=row["referrer"],
        first_page_url=row["first_page_url"],
        first_referrer=row["first_referrer"],
    )


def _person_created(row: RowMapping) -> PersonCreated | None:
    role = row["created_by_role"]
    if row["crm_created_at"] is None and role is None and row["crm_lead_source"] is None:
        return None
    return PersonCreated(
        occurred_at=row["crm_created_at"] or row["first_seen_at"],
        created_by_role=RepRole(role) if role else None,
        lead_source=row["crm_lead_source"],
        offline_detail=row["offline_detail"],
    )


def _touches_by_person(
    session: Session, person_ids: Collection[str]
) -> dict[str, list[RowMapping]]:
    by_person: dict[str, list[RowMapping]] = defaultdict(list)
    if not person_ids:
        return by_person
    query = select(models.touches).where(one_of(models.touches.c.person_id, person_ids))
    for row in session.execute(query).mappings():
        by_person[row["person_id"]].append(row)
    return by_person


_PERSON_DECISIONS = ("lead_source", "first_touchpoint", "first_touch_id", "first_touch_at")


def _settled(row: RowMapping, later_touches: Mapping[str, datetime]) -> bool:
    """A person's decisions rest on their earliest touch and their record's creation: a
    touch after their first one changes nothing, so their touches need not be read."""
    at = later_touches.get(row["person_id"])
    first = row["first_touch_at"]
    return at is not None and first is not None and row["lead_source"] is not None and at > first


def recompute_people(
    session: Session,
    person_ids: Collection[str],
    rules: Rules,
    *,
    later_touches: Mapping[str, datetime] | None = None,
) -> set[str]:
    """Decide the people again; returns those whose source or first touch changed.

    `later_touches`: people whose only news is touches, with the earliest of them."""
    if not person_ids:
        return set()
    people = models.people
    rows = (
        session.execute(
            select(*_without_field_times(people)).where(one_of(people.c.person_id, person_ids))
        )
        .mappings()
        .all()
    )
    rows = [row for row in rows if not _settled(row, later_touches or {})]
    touches = _touches_by_person(session, [row["person_id"] for row in rows])
    updates: list[dict[str, Any]] = []
    changed: set[str] = set()
    for row in rows:
        person = attribute_person(
            _person_created(row),
            [_gated_touch(t) for t in touches.get(row["person_id"], ())],
            rules.touchpoints,
            rules.buckets,
        )
        decided = {
            "person_id": row["person_id"],
            "lead_source": person.lead_source.value,
            "first_touchpoint": person.first_touchpoint.value,
            "first_touch_id": person.first_touch_id,
            "first_touch_at": person.first_touch_at,
            "original_source": person.original_source.source.value,
            "original_source_detail": person.original_source.detail,
            "first_url": person.first_url,
            "first_referrer": person.first_referrer,
        }
        if any(row[key] != value for key, value in decided.items()):
            updates.append(decided)
        if any(row[key] != decided[key] for key in _PERSON_DECISIONS):
            changed.add(row["person_id"])
    _update(session, people, "person_id", updates)
    count_decisions(session, "person", len(updates))
    return changed


def _update(session: Session, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Write decisions into their rows, in one statement (in key order)."""
    if not rows:
        return
    names = tuple(name for name in rows[0] if name != key)
    rows.sort(key=lambda row: str(row[key]))
    session.execute(bulk.update_by_key(table, key, names), bulk.arrays(table, (key, *names), rows))


# --- opportunities -----------------------------------------------------------------------


def _created_at(row: RowMapping) -> datetime:
    created: datetime = row["crm_created_at"] or row["first_seen_at"]
    return created


def _campaign_touch(row: RowMapping) -> CampaignTouch:
    form_id = row["form_id"]
    campaign = row["campaign_id"] or (f"form:{form_id}" if form_id else NO_CAMPAIGN)
    return CampaignTouch(
        touch_id=row["touch_id"],
        person_id=row["person_id"],
        campaign_id=campaign,
        occurred_at=row["occurred_at"],
    )


@dataclass(frozen=True)
class _Known:
    """What the decisions of a set of opportunities read: their people and forms, each
    turned into the domain's terms once for all the opportunities that read it."""

    people: Mapping[str, RowMapping]
    people_by_account: Mapping[str, Sequence[str]]
    contacts_by_account: Mapping[str, Sequence[AccountContact]]
    forms_by_person: Mapping[str, Sequence[CampaignTouch]]


def _load_known(session: Session, opportunities: Sequence[RowMapping], window: timedelta) -> _Known:
    accounts = {o["account_id"] for o in opportunities if o["account_id"]}
    converted = {o["converted_person_id"] for o in opportunities if o["converted_person_id"]}
    people_table = models.people
    query = select(*(people_table.c[name] for name in _KNOWN_OF_PEOPLE)).where(
        or_(
            one_of(people_table.c.account_id, accounts),
            one_of(people_table.c.person_id, converted),
        )
    )
    rows = session.execute(query).mappings().all()
    people = {row["person_id"]: row for row in rows}
    by_account: dict[str, list[str]] = defaultdict(list)
    contacts: dict[str, list[AccountContact]] = defaultdict(list)
    for row in people.values():
        account, person_id, source = row["account_id"], row["person_id"], row["lead_source"]
        if account:
            by_account[account].append(person_id)
            if source:
                contacts[account].append(
                    AccountContact(person_id, LEAD_SOURCES[source], _created_at(row))
                )
    forms = _forms(session, people, by_account, opportunities, window)
    return _Known(people, by_account, contacts, forms)


# What the opportunities' decisions read of a person.
_KNOWN_OF_PEOPLE = (
    "person_id",
    "account_id",
    "crm_created_at",
    "first_seen_at",
    "lead_source",
    "first_touchpoint",
    "first_touch_id",
)
LEAD_SOURCES = {source.value: source for source in LeadSource}


def _forms(
    session: Session,
    people: Mapping[str, RowMapping],
    people_by_account: Mapping[str, Sequence[str]],
    opportunities: Sequence[RowMapping],
    window: timedelta,
) -> dict[str, list[CampaignTouch]]:
    """The forms the decisions can read: of each opportunity's people (its account's and
    its converted lead) those in its window, and of the converted lead also the last one
    up to its creation (the primary campaign has no age limit)."""
    windows: set[tuple[str, datetime, datetime]] = set()
    last_before: set[tuple[str, datetime]] = set()
    for opportunity in opportunities:
        created = _created_at(opportunity)
        readers = list(people_by_account.get(opportunity["account_id"] or "", ()))
        lead = opportunity["converted_person_id"]
        if lead in people:
            readers.append(lead)
            last_before.add((lead, created))
        windows.update((person_id, created - window, created) for person_id in readers)
    by_person: dict[str, list[CampaignTouch]] = defaultdict(list)
    if not windows:
        return by_person
    params = {
        "windows_person_id": [w[0] for w in windows],
        "windows_since": [w[1] for w in windows],
        "windows_until": [w[2] for w in windows],
        "last_person_id": [w[0] for w in last_before],
        "last_until": [w[1] for w in last_before],
    }
    for row in session.execute(_forms_statement(), params):
        by_person[row.person_id].append(_campaign_touch(row._mapping))
    return by_person


@cache
def _forms_statement() -> CompoundSelect[Any]:
    touches = models.touches
    names = ("touch_id", "person_id", "campaign_id", "form_id", "occurred_at")
    columns = [touches.c[name] for name in names]
    is_form = touches.c.kind == TouchKind.FORM.value
    windows = bulk.unnest(
        "windows",
        person_id=Text(),
        since=DateTime(timezone=True),
        until=DateTime(timezone=True),
    )
    last = bulk.unnest("last", person_id=Text(), until=DateTime(timezone=True))
    earlier = touches.alias("earlier")
    latest = (
        select(func.max(earlier.c.occurred_at))
        .where(
            earlier.c.person_id == last.c.person_id,
            earlier.c.kind == TouchKind.FORM.value,
            earlier.c.occurred_at <= last.c.until,
        )
        .scalar_subquery()
    )
    return union(
        select(*columns)
        .select_from(windows.join(touches, touches.c.person_id == windows.c.person_id))
        .where(
            is_form,
            touches.c.occurred_at >= windows.c.since,
            touches.c.occurred_at <= windows.c.until,
        ),
        # Every form at the latest time (the domain breaks ties by its own order).
        select(*columns)
        .select_from(last.join(touches, touches.c.person_id == last.c.person_id))
        .where(is_form, touches.c.occurred_at == latest),
    )


def _source_decision(
    opportunity: RowMapping, known: _Known, rules: Rules
) -> tuple[OpportunitySourceDecision, RowMapping | None]:
    lead_row = known.people.get(opportunity["converted_person_id"] or "")
    lead = None
    if lead_row is not None:
        lead = ConvertedLead(
            person_id=lead_row["person_id"],
            lead_source=LEAD_SOURCES[lead_row["lead_source"]]
            if lead_row["lead_source"]
            else LeadSource.OTHER,
            created_at=_created_at(lead_row),
        )
    decision = opportunity_source(
        lead,
        known.contacts_by_account.get(opportunity["account_id"] or "", ()),
        given_source=opportunity["given_lead_source"],
        owner_role=rules.rep_roles.get(opportunity["owner_id"] or ""),
        policy=rules.opportunity_source,
    )
    return decision, lead_row


def _influence(
    opportunity: RowMapping, lead_row: RowMapping | None, known: _Known, rules: Rules
) -> CampaignInfluence:
    person_ids = set(known.people_by_account.get(opportunity["account_id"] or "", ()))
    if lead_row is not None:
        person_ids.add(lead_row["person_id"])
    touches = [t for pid in person_ids for t in known.forms_by_person.get(pid, ())]
    return campaign_influence(
        touches,
        opportunity_created_at=_created_at(opportunity),
        converting_person_id=lead_row["person_id"] if lead_row is not None else None,
        lead_creation_touch_id=lead_row["first_touch_id"] if lead_row is not None else None,
        policy=rules.influence,
    )


def opportunity_inputs(session: Session, person_ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
    """What of a person the opportunities' decisions read: account, creation, source."""
    if not person_ids:
        return {}
    people = models.people
    rows = session.execute(
        select(
            people.c.person_id,
            people.c.account_id,
            people.c.crm_created_at,
            people.c.first_seen_at,
            people.c.lead_source,
        ).where(one_of(people.c.person_id, person_ids))
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def affected_opportunities(
    session: Session,
    opportunity_ids: Collection[str],
    changed_people: Mapping[str, tuple[frozenset[str], datetime]],
    new_forms: Sequence[tuple[str, datetime]],
    window: timedelta,
) -> list[RowMapping]:
    """The opportunities whose decisions may change, locked for deciding.

    Named ones, and those converted from a changed person, always. Otherwise a changed
    person can only matter to an opportunity on their account (`changed_people` gives
    each changed person's accounts, before and after, and the earliest they were seen or
    created) created after they appeared: their forms count up to its creation, and as a
    contact they count only if created before its lead. The new forms (person, time) of
    everyone else matter only to what reads forms: the journeys of their account's
    opportunities whose window holds them, and as the converted lead's last form, any
    opportunity of theirs created since. So old opportunities are not decided again for
    every new form or contact on their account.

    One statement: the candidates are chosen in SQL, and only those are read and locked.
    """
    account_since: dict[str, datetime] = {}
    for accounts, since in changed_people.values():
        for account in accounts:
            account_since[account] = min(since, account_since.get(account, since))
    # Locked (in id order: instances never wait on each other in a circle) so that two
    # instances deciding the same opportunity from different partitions' facts take turns,
    # and the second decides with the first's facts committed.
    rows = session.execute(
        _affected_statement(),
        {
            "opportunity_ids": list(opportunity_ids),
            "changed_people": list(changed_people),
            "accounts_account_id": list(account_since),
            "accounts_since": list(account_since.values()),
            "forms_person_id": [person_id for person_id, _ in new_forms],
            "forms_at": [at for _, at in new_forms],
            "window": window,
        },
    )
    return list(rows.mappings())


@cache
def _affected_statement() -> Select[Any]:
    table, people = models.opportunities, models.people
    lead = people.alias("lead")
    created = func.coalesce(table.c.crm_created_at, table.c.first_seen_at)
    # What happened after both the opportunity's and its lead's creation cannot count.
    horizon = func.greatest(created, func.coalesce(lead.c.crm_created_at, lead.c.first_seen_at))
    with_lead = table.outerjoin(lead, lead.c.person_id == table.c.converted_person_id)
    accounts = bulk.unnest("accounts", account_id=Text(), since=DateTime(timezone=True))
    forms = bulk.unnest("forms", person_id=Text(), at=DateTime(timezone=True))
    author = people.alias("author")
    ids = table.c.opportunity_id
    chosen = union(
        select(ids).where(
            or_(
                ids == any_(bindparam("opportunity_ids", type_=ARRAY(Text))),
                table.c.converted_person_id == any_(bindparam("changed_people", type_=ARRAY(Text))),
            )
        ),
        # A changed person, from the earliest they were seen or created, on their accounts.
        select(ids)
        .select_from(accounts.join(with_lead, table.c.account_id == accounts.c.account_id))
        .where(accounts.c.since <= horizon),
        # A new form, in the window of an opportunity on its author's account...
        select(ids)
        .select_from(
            forms.join(author, author.c.person_id == forms.c.person_id).join(
                table, table.c.account_id == author.c.account_id
            )
        )
        .where(
            forms.c.at <= created,
            # Elapsed time, as the domain counts it (not `created - window`: calendar days).
            created - forms.c.at <= bindparam("window", type_=Interval()),
        ),
        # ... and up to the creation of an opportunity its author converted into.
        select(ids)
        .select_from(forms.join(table, table.c.converted_person_id == forms.c.person_id))
        .where(forms.c.at <= created),
    )
    return (
        select(*_without_field_times(table)).where(ids.in_(chosen)).order_by(ids).with_for_update()
    )


def _stored_influence(
    session: Session, opportunity_ids: Collection[str]
) -> dict[str, set[tuple[Any, ...]]]:
    table = models.opportunity_influence
    stored: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for row in session.execute(
        select(table).where(one_of(table.c.opportunity_id, opportunity_ids))
    ).mappings():
        stored[row["opportunity_id"]].add(_comparable(row))
    return stored


def _comparable(row: Mapping[str, Any] | RowMapping) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in models.opportunity_influence.c)


def recompute_opportunities(
    session: Session, opportunities: Sequence[RowMapping], rules: Rules
) -> None:
    """Decide the opportunities again; write only what changed (most decisions taken
    again come out the same, and an unchanged row costs Postgres nothing)."""
    if not opportunities:
        return
    known = _load_known(session, opportunities, rules.influence.window)
    stored = _stored_influence(session, [o["opportunity_id"] for o in opportunities])
    updates: list[dict[str, Any]] = []
    replaced: list[str] = []
    influence_rows: list[dict[str, Any]] = []
    for opportunity in opportunities:
        decision, lead_row = _source_decision(opportunity, known, rules)
        influence = _influence(opportunity, lead_row, known, rules)
        row = _decision_row(opportunity, decision, lead_row, influence)
        if any(opportunity[k] != v for k, v in row.items()):
            updates.append(row)
        rows = _influence_rows(opportunity["opportunity_id"], influence)
        if {_comparable(r) for r in rows} != stored.get(opportunity["opportunity_id"], set()):
            replaced.append(opportunity["opportunity_id"])
            influence_rows.extend(rows)
    _update(session, models.opportunities, "opportunity_id", updates)
    decided = {row["opportunity_id"] for row in updates} | set(replaced)
    count_decisions(session, "opportunity", len(decided))
    influence_table = models.opportunity_influence
    if replaced:
        session.execute(
            delete(influence_table).where(one_of(influence_table.c.opportunity_id, replaced))
        )
    if influence_rows:
        names = tuple(c.name for c in influence_table.c)
        session.execute(
            bulk.insert(influence_table, names), bulk.arrays(influence_table, names, influence_rows)
        )


def _decision_row(
    opportunity: RowMapping,
    decision: OpportunitySourceDecision,
    lead_row: RowMapping | None,
    influence: CampaignInfluence,
) -> dict[str, Any]:
    return {
        "opportunity_id": opportunity["opportunity_id"],
        "opportunity_source": decision.opportunity_source,
        "lead_source": decision.lead_source.value if decision.lead_source else None,
        "source_rule": decision.rule.value,
        "reason": decision.reason,
        "source_person_id": decision.source_person_id,
        "first_touchpoint": lead_row["first_touchpoint"] if lead_row is not None else None,
        "primary_campaign_id": influence.primary_campaign_id,
        "primary_touch_id": influence.primary_touch_id,
    }


def _influence_rows(opportunity_id: str, influence: CampaignInfluence) -> list[dict[str, Any]]:
    rows = []
    for credit in influence.touches:
        row: dict[str, Any] = {
            "opportunity_id": opportunity_id,
            "touch_id": credit.touch.touch_id,
            "person_id": credit.touch.person_id,
            "campaign_id": credit.touch.campaign_id,
            "touched_at": credit.touch.occurred_at,
            "positions": ",".join(sorted(p.value for p in credit.positions)),
        }
        for model in AttributionModel:
            row[models.credit_column(model)] = credit.credit[model]
        rows.append(row)
    return rows
