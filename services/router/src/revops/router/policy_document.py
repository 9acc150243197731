"""The routing policy as a team writes it (YAML or JSON), validated as a whole.

Every error is reported with the line it is on and the path of the field, and one bad
field refuses the whole document: a policy is applied entirely or not at all.

    territories:
      - name: us-west-mid-market
        region: AMER
        match:
          countries: [US]
          states: [CA, OR, WA]
          employees: {min: 200, max: 999}
          segments: [mid-market]
          form_types: [demo_request]
    fallback_region: AMER
    escalation:
      inbound-EMEA:
        reassign: 2
        manager: rep-emea-lead
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from revops.router.domain.regions import country_code
from revops.router.domain.reps import Region
from revops.router.domain.territories import (
    MAX_REASSIGNMENTS,
    EscalationRule,
    InvalidPolicy,
    PolicyError,
    Territory,
    TerritoryPolicy,
    country_key,
    normalise_value,
)

MAX_TERRITORIES = 10_000
# libyaml's safe loader when PyYAML has it (its wheels do): a 200-territory policy parses
# in a fraction of the pure-Python loader's time.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Strict = ConfigDict(extra="forbid", frozen=True)


class EmployeesBand(BaseModel):
    model_config = _Strict
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> EmployeesBand:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


Values = list[str]


class TerritoryMatch(BaseModel):
    model_config = _Strict
    countries: Values = Field(default_factory=list, max_length=1000)
    states: Values = Field(default_factory=list, max_length=1000)
    employees: EmployeesBand | None = None
    segments: Values = Field(default_factory=list, max_length=1000)
    form_types: Values = Field(default_factory=list, max_length=1000)

    @field_validator("countries")
    @classmethod
    def _known_countries(cls, values: Values) -> Values:
        unknown = [v for v in values if country_code(v) is None]
        if unknown:
            raise ValueError(f"unknown countries {unknown} (a name, an alias or an ISO code)")
        return values


class TerritoryEntry(BaseModel):
    model_config = _Strict
    name: str = Field(min_length=1, max_length=100)
    region: Region
    match: TerritoryMatch = Field(default_factory=TerritoryMatch)


# The queues a territory's region routes to (``Placement.queue``).
QueueName = Literal["inbound-AMER", "inbound-EMEA", "inbound-APAC"]


class EscalationEntry(BaseModel):
    """A queue's SLA escalation (``domain.escalation``)."""

    model_config = _Strict
    reassign: int = Field(default=0, ge=0, le=MAX_REASSIGNMENTS)
    manager: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _does_something(self) -> EscalationEntry:
        if self.reassign == 0 and self.manager is None:
            raise ValueError("give reassign (1 or more), a manager, or both")
        return self


class PolicyDocument(BaseModel):
    model_config = _Strict
    territories: list[TerritoryEntry] = Field(min_length=1, max_length=MAX_TERRITORIES)
    fallback_region: Region | None = None
    escalation: dict[QueueName, EscalationEntry] = Field(default_factory=dict)


def parse_policy(text: str, version: int) -> TerritoryPolicy:
    """The policy a document describes, or ``InvalidPolicy`` naming every error."""
    return to_policy(parse_document(text), version)


def parse_document(text: str) -> PolicyDocument:
    try:
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # safe: SafeLoader or CSafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InvalidPolicy((PolicyError(line, "(document)", f"not YAML or JSON: {e}"),)) from e
    lines = _lines_of(node)
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as e:
        raise InvalidPolicy(tuple(_error(err, lines) for err in e.errors())) from e
    duplicates = _duplicate_names(document)
    if duplicates:
        raise InvalidPolicy(
            tuple(
                PolicyError(lines.get(("territories", i, "name")), f"territories[{i}].name", msg)
                for i, msg in duplicates
            )
        )
    return document


def to_policy(document: PolicyDocument, version: int) -> TerritoryPolicy:
    return TerritoryPolicy(
        version,
        tuple(_territory(t) for t in document.territories),
        document.fallback_region,
        tuple(
            EscalationRule(queue, entry.reassign, entry.manager)
            for queue, entry in sorted(document.escalation.items())
        ),
    )


def _territory(entry: TerritoryEntry) -> Territory:
    m = entry.match
    band = m.employees or EmployeesBand()
    return Territory(
        entry.name,
        entry.region,
        frozenset(country_key(c) for c in m.countries),
        frozenset(normalise_value(s) for s in m.states),
        frozenset(normalise_value(s) for s in m.segments),
        frozenset(normalise_value(f) for f in m.form_types),
        band.min,
        band.max,
    )


def _duplicate_names(document: PolicyDocument) -> list[tuple[int, str]]:
    first: dict[str, int] = {}
    found: list[tuple[int, str]] = []
    for i, entry in enumerate(document.territories):
        if entry.name in first:
            found.append((i, f"name {entry.name!r} is already territory {first[entry.name]}'s"))
        else:
            first[entry.name] = i
    return found


Path = tuple[str | int, ...]


def _lines_of(node: yaml.Node | None, path: Path = ()) -> dict[Path, int]:
    """The 1-based line of every node of the document, by its path (keys and indexes)."""
    if node is None:
        return {}
    lines: dict[Path, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(_lines_of(value, (*path, str(key.value))))
            lines[(*path, str(key.value))] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_lines_of(item, (*path, i)))
    return lines


def _error(err: Any, lines: dict[Path, int]) -> PolicyError:
    loc: Path = tuple(err["loc"])
    line = None
    for end in range(len(loc), -1, -1):  # the deepest part of the path the document has
        if loc[:end] in lines:
            line = lines[loc[:end]]
            break
    return PolicyError(line, _field(loc) or "(document)", str(err["msg"]))


def _field(loc: Path) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
