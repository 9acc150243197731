"""Territories: which region's inbound queue a lead goes to, as a team writes it down.

A territory matches on country, state or province, company size (employees), segment
and form type; a criterion left out matches anything. The territories are tried in the
order the policy lists them and the first that matches wins. A lead none matches goes
where it went before territories existed: its account's region, else the policy's
fallback region, else the unassigned queue (never nowhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from revops.router.domain.regions import (
    DEFAULT_REGION_MAP,
    RegionMap,
    country_code,
    normalise_country,
)
from revops.router.domain.reps import REGIONS, Region

DEFAULT_POLICY_VERSION = 0  # the policy built from configuration, before any change


def normalise_value(value: str) -> str:
    """States, segments and form types compare without case, accents, dots or spacing."""
    return normalise_country(value)


def country_key(value: str) -> str:
    """A country as territories compare it: its ISO alpha-2 code, else the spelling."""
    return country_code(value) or normalise_country(value)


@dataclass(frozen=True)
class Territory:
    name: str
    region: Region
    countries: frozenset[str] = frozenset()  # country_key values
    states: frozenset[str] = frozenset()  # normalise_value values
    segments: frozenset[str] = frozenset()
    form_types: frozenset[str] = frozenset()
    min_employees: int | None = None  # inclusive bounds of the company size band
    max_employees: int | None = None

    @property
    def queue(self) -> str:
        return f"inbound-{self.region}"


@dataclass(frozen=True)
class LeadFields:
    """What a territory looks at, as the lead gave it."""

    country: str | None = None
    state: str | None = None
    employees: int | None = None
    segment: str | None = None
    form_type: str | None = None


@dataclass(frozen=True)
class _Keys:
    """A lead's fields as territories compare them, normalised once per lead."""

    country: str | None
    state: str | None
    segment: str | None
    form_type: str | None
    employees: int | None


def _keys(lead: LeadFields) -> _Keys:
    def key(value: str | None) -> str | None:
        return normalise_value(value) if value and value.strip() else None

    country = lead.country
    return _Keys(
        country_key(country) if country and country.strip() else None,
        key(lead.state),
        key(lead.segment),
        key(lead.form_type),
        lead.employees,
    )


def _has(wanted: frozenset[str], key: str | None) -> bool:
    return not wanted or (key is not None and key in wanted)


def matches(territory: Territory, lead: LeadFields) -> bool:
    """Every criterion the territory sets holds for the lead; a lead that lacks a field a
    criterion needs does not match it."""
    return _matches(territory, _keys(lead))


def _matches(t: Territory, k: _Keys) -> bool:
    if not (
        _has(t.countries, k.country)
        and _has(t.states, k.state)
        and _has(t.segments, k.segment)
        and _has(t.form_types, k.form_type)
    ):
        return False
    if t.min_employees is None and t.max_employees is None:
        return True
    if k.employees is None:
        return False
    low = t.min_employees if t.min_employees is not None else 0
    return low <= k.employees and (t.max_employees is None or k.employees <= t.max_employees)


MAX_REASSIGNMENTS = 10


@dataclass(frozen=True)
class EscalationRule:
    """A queue's escalation: up to ``reassign`` reassignments to the next rep of its
    rotation, then its ``manager`` (a rep id), if it has one."""

    queue: str
    reassign: int = 0
    manager_id: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.reassign <= MAX_REASSIGNMENTS:
            raise ValueError(f"reassign must be 0 to {MAX_REASSIGNMENTS}, got {self.reassign}")
        if self.reassign == 0 and not self.manager_id:
            raise ValueError(f"escalation of {self.queue} does nothing: no reassign, no manager")


@dataclass(frozen=True)
class TerritoryPolicy:
    """A version of the routing policy: its territories in order and its fallback."""

    version: int
    territories: tuple[Territory, ...]
    fallback_region: Region | None = None
    # SLA escalation per queue (``domain.escalation``); a queue not named has none.
    escalations: tuple[EscalationRule, ...] = ()
    # The territories a lead of a country can match (those naming it or naming none), in
    # the policy's order: most name countries, so a lead is tried against a few of 200.
    _by_country: dict[str | None, tuple[Territory, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _placed: dict[tuple[LeadFields, Region | None], Placement] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def escalation_of(self, queue: str | None) -> EscalationRule | None:
        return next((e for e in self.escalations if e.queue == queue), None)

    def territory_of(self, lead: LeadFields) -> Territory | None:
        keys = _keys(lead)
        return next((t for t in self._candidates(keys.country) if _matches(t, keys)), None)

    def _candidates(self, country: str | None) -> tuple[Territory, ...]:
        found = self._by_country.get(country)
        if found is None:
            found = tuple(
                t
                for t in self.territories
                if not t.countries or (country is not None and country in t.countries)
            )
            if len(self._by_country) < _MAX_COUNTRIES_KEPT:  # spellings nobody knows
                self._by_country[country] = found
        return found


_MAX_COUNTRIES_KEPT = 1000


@dataclass(frozen=True)
class Placement:
    """Where a lead goes and why: the territory that matched, or what stood in for one."""

    region: Region | None
    territory: str | None  # the matching territory's name; None when none matched
    policy_version: int

    @property
    def queue(self) -> str | None:
        return f"inbound-{self.region}" if self.region is not None else None


def place_lead(
    policy: TerritoryPolicy, lead: LeadFields, account_region: Region | None
) -> Placement:
    # A batch places each lead three times (the rotations to lock, the queue, the
    # decision): the answer is kept for the batch's leads.
    placed = policy._placed.get((lead, account_region))
    if placed is not None:
        return placed
    territory = policy.territory_of(lead)
    if territory is not None:
        placed = Placement(territory.region, territory.name, policy.version)
    else:
        placed = Placement(account_region or policy.fallback_region, None, policy.version)
    if len(policy._placed) >= _MAX_PLACEMENTS_KEPT:
        policy._placed.clear()
    policy._placed[(lead, account_region)] = placed
    return placed


_MAX_PLACEMENTS_KEPT = 10_000


def default_policy(
    region_map: RegionMap = DEFAULT_REGION_MAP, fallback_region: Region | None = None
) -> TerritoryPolicy:
    """The handbook's routing as territories: one per region, by country (with the
    configured country overrides), in the order AMER, EMEA, APAC."""
    countries: Mapping[Region, frozenset[str]] = {
        region: frozenset(key for key, r in region_map.country_keys().items() if r == region)
        for region in REGIONS
    }
    return TerritoryPolicy(
        DEFAULT_POLICY_VERSION,
        tuple(Territory(region, region, countries[region]) for region in REGIONS),
        fallback_region,
    )


@dataclass(frozen=True)
class PolicyError:
    """One thing wrong in a policy document: where (line, field path) and what."""

    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}"


@dataclass(frozen=True)
class InvalidPolicy(Exception):
    errors: tuple[PolicyError, ...] = field(default=())

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)
