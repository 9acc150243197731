"""The facts events bring about people and opportunities, merged so that the result
does not depend on the order the events arrive in.

A field takes the value of the event that happened last (by `occurred_at`, then event
id), wherever and whenever that event arrives: a CRM update that was delayed does not
undo a newer one, and replaying the topics in another interleaving gives the same
record. Each field's winning stamp is kept in the row (`field_times`). Creation and
first-seen times keep the earliest value instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import RowMapping, Table, func, select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.orm import Session

from revops.attribution import models
from revops.events import bulk
from revops.events.db import one_of

Stamp = tuple[str, str]  # (occurred_at as fixed-width UTC text, event id): sorts by time
_NO_STAMP: Stamp = ("", "")
_BOOKKEEPING = frozenset({"stamp", "field_stamps"})


def stamp(occurred_at: datetime, event_id: str) -> Stamp:
    return (occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), event_id)


def _earliest(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else min(a, b)


@dataclass
class Facts:
    KEY: ClassVar[str]
    TABLE: ClassVar[Table]
    EARLIEST: ClassVar[frozenset[str]]

    def __post_init__(self) -> None:
        own: Stamp = getattr(self, "stamp")  # noqa: B009 (declared by the subclasses)
        for name in self.fact_names():
            if getattr(self, name) is not None and name not in self.EARLIEST:
                self.field_stamps.setdefault(name, own)

    field_stamps: dict[str, Stamp] = field(default_factory=dict, kw_only=True)

    @classmethod
    def fact_names(cls) -> tuple[str, ...]:
        return _fact_names(cls)

    def merge(self, other: Facts) -> bool:
        """Take from `other` every field it saw later than this record did; whether
        anything changed (a value comes with its stamp: the same stamp, the same event,
        the same value)."""
        changed = False
        for name in self.fact_names():
            if name in self.EARLIEST:
                mine = getattr(self, name)
                earliest = _earliest(mine, getattr(other, name))
                if earliest != mine:
                    setattr(self, name, earliest)
                    changed = True
                continue
            theirs = other.field_stamps.get(name)
            if theirs is not None:
                mine_stamp = self.field_stamps.get(name, _NO_STAMP)
                if theirs > mine_stamp:
                    setattr(self, name, getattr(other, name))
                    self.field_stamps[name] = theirs
                    changed = True
        return changed

    def row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in _columns(type(self))}
        row["field_times"] = {name: list(s) for name, s in sorted(self.field_stamps.items())}
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Facts:
        stamps = {name: (s[0], s[1]) for name, s in (row["field_times"] or {}).items()}
        values = {name: row[name] for name in _columns(cls)}
        return cls(**values, field_stamps=stamps)


_FACT_NAMES: dict[str, tuple[str, ...]] = {}


def _fact_names(cls: type[Facts]) -> tuple[str, ...]:
    names = _FACT_NAMES.get(cls.__name__)
    if names is None:
        names = tuple(f.name for f in fields(cls) if f.name not in {*_BOOKKEEPING, cls.KEY})
        _FACT_NAMES[cls.__name__] = names
    return names


def _columns(cls: type[Facts]) -> tuple[str, ...]:
    """The key, then the facts."""
    return (cls.KEY, *_fact_names(cls))


@dataclass
class PersonFacts(Facts):
    KEY: ClassVar[str] = "person_id"
    TABLE: ClassVar[Table] = models.people
    EARLIEST: ClassVar[frozenset[str]] = frozenset({"first_seen_at", "crm_created_at"})

    person_id: str
    first_seen_at: datetime
    email: str | None = None
    person_type: str | None = None
    account_id: str | None = None
    crm_created_at: datetime | None = None
    created_by_id: str | None = None
    created_by_role: str | None = None
    crm_lead_source: str | None = None
    offline_detail: str | None = None
    stamp: Stamp = field(default=_NO_STAMP, kw_only=True)


@dataclass
class OpportunityFacts(Facts):
    KEY: ClassVar[str] = "opportunity_id"
    TABLE: ClassVar[Table] = models.opportunities
    EARLIEST: ClassVar[frozenset[str]] = frozenset(
        {"first_seen_at", "crm_created_at", "qualified_at"}
    )

    opportunity_id: str
    first_seen_at: datetime
    account_id: str | None = None
    name: str | None = None
    stage: str | None = None
    amount: Any = None
    close_date: Any = None
    owner_id: str | None = None
    is_closed: bool | None = None
    is_won: bool | None = None
    is_deleted: bool | None = None
    given_lead_source: str | None = None
    crm_created_at: datetime | None = None
    qualified_at: datetime | None = None
    converted_lead_id: str | None = None
    converted_person_id: str | None = None
    converted_at: datetime | None = None
    stamp: Stamp = field(default=_NO_STAMP, kw_only=True)


def note(records: dict[str, Any], facts: Facts) -> None:
    """Add one event's facts to the batch's, merged per field."""
    key = getattr(facts, facts.KEY)
    known = records.get(key)
    if known is None:
        records[key] = facts
    else:
        known.merge(facts)


def write(session: Session, cls: type[Facts], records: Iterable[Facts]) -> None:
    """Merge the batch's facts into the stored records and write back those that changed,
    in one statement.

    The stored rows are locked first (in key order, so two instances never wait on
    each other in a circle) so no other transaction merges into them meanwhile."""
    batch = {getattr(r, cls.KEY): r for r in records}
    if not batch:
        return
    table, key = cls.TABLE, cls.KEY
    names = (key, *cls.fact_names(), "field_times")
    stored = session.execute(
        select(*(table.c[name] for name in names))
        .where(one_of(table.c[key], batch))
        .order_by(table.c[key])
        .with_for_update()
    ).mappings()
    unchanged: set[str] = set()
    for row in stored:
        record = cls.from_row(row)
        if not record.merge(batch[row[key]]):
            unchanged.add(row[key])
        batch[row[key]] = record
    rows = [batch[k].row() for k in sorted(batch) if k not in unchanged]
    if rows:
        statement = _upsert(table, key, cls.fact_names(), cls.EARLIEST)
        session.execute(statement, bulk.arrays(table, names, rows))


@cache
def _upsert(table: Table, key: str, facts: tuple[str, ...], earliest: frozenset[str]) -> Insert:
    statement = bulk.insert(table, (key, *facts, "field_times"))
    set_: dict[str, Any] = {name: statement.excluded[name] for name in [*facts, "field_times"]}
    for name in earliest:
        set_[name] = func.least(table.c[name], statement.excluded[name])
    return statement.on_conflict_do_update(index_elements=[key], set_=set_)
