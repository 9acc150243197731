"""Stage names and forecast categories, as the CRMs send them, made comparable.

A stage's order comes from the number in its name (``1 - Interest``, ``Stage 2 -
Qualified``, ``0. Prospecting``); ``Closed Won`` / ``Closed Lost`` are recognised in
any case and spacing. Names without a number (Salesforce's standard stages, HubSpot's
deal stages) come from a mapping the deployment can override.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class ForecastCategory(StrEnum):
    PIPELINE = "Pipeline"
    BEST_CASE = "Best Case"
    COMMIT = "Commit"
    CLOSED = "Closed"
    OMITTED = "Omitted"


@dataclass(frozen=True)
class Stage:
    name: str
    order: int | None  # None: a name we cannot place (it never counts as pipeline)
    kind: StageKind = StageKind.OPEN

    @property
    def is_closed(self) -> bool:
        return self.kind is not StageKind.OPEN

    @property
    def is_won(self) -> bool:
        return self.kind is StageKind.WON

    def reaches(self, level: int) -> bool:
        """Whether being in this stage means having reached stage ``level`` or beyond.

        Closed Won is beyond every open stage (a deal won straight away was a meeting and
        was qualified); Closed Lost says nothing about how far the deal got.
        """
        if self.kind is StageKind.WON:
            return True
        if self.kind is StageKind.LOST:
            return False
        return self.order is not None and self.order >= level


def squash(name: str) -> str:
    """The comparable form of a name: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]+", "", name.lower())


# Salesforce's default sales process and HubSpot's default deal pipeline, placed on the
# handbook's scale: 0 prospecting (not pipeline), 1 first meeting, 2+ qualified.
DEFAULT_STAGE_ORDERS: Mapping[str, int] = MappingProxyType(
    {
        "Prospecting": 0,
        "Qualification": 1,
        "Needs Analysis": 2,
        "Value Proposition": 3,
        "Id. Decision Makers": 4,
        "Perception Analysis": 5,
        "Proposal/Price Quote": 6,
        "Negotiation/Review": 7,
        "appointmentscheduled": 1,
        "qualifiedtobuy": 2,
        "presentationscheduled": 3,
        "decisionmakerboughtin": 4,
        "contractsent": 5,
    }
)
DEFAULT_WON_NAMES: frozenset[str] = frozenset({"Closed Won", "closedwon"})
DEFAULT_LOST_NAMES: frozenset[str] = frozenset({"Closed Lost", "closedlost"})

_NUMBERED = re.compile(
    r"^\s*(?:stage\s*)?(\d{1,3})(?![\d])(?:\s*[-.:)\u2013\u2014]\s*|\s+|$)", re.I
)


@dataclass(frozen=True)
class StageMap:
    """How stage names become stages; ``orders``/``won``/``lost`` come from configuration."""

    orders: Mapping[str, int] = field(default_factory=lambda: DEFAULT_STAGE_ORDERS)
    won: frozenset[str] = DEFAULT_WON_NAMES
    lost: frozenset[str] = DEFAULT_LOST_NAMES

    # Kept squashed so lookups tolerate case and spacing.
    @cached_property
    def _orders(self) -> dict[str, int]:
        return {squash(k): v for k, v in self.orders.items()}

    @cached_property
    def _won(self) -> frozenset[str]:
        return frozenset(squash(n) for n in self.won)

    @cached_property
    def _lost(self) -> frozenset[str]:
        return frozenset(squash(n) for n in self.lost)

    def with_overrides(
        self,
        orders: Mapping[str, int] | None = None,
        won: frozenset[str] = frozenset(),
        lost: frozenset[str] = frozenset(),
    ) -> StageMap:
        return StageMap({**self.orders, **(orders or {})}, self.won | won, self.lost | lost)

    @cached_property
    def _parsed(self) -> dict[tuple[str, bool | None, bool | None], Stage]:
        return {}

    def parse(
        self, name: str, *, is_closed: bool | None = None, is_won: bool | None = None
    ) -> Stage:
        """The stage a name means; the CRM's own closed/won flags win when it sends them."""
        # A CRM has a handful of stage names: each is read once (Stage is immutable).
        cache_key = (name, is_closed, is_won)
        found = self._parsed.get(cache_key)
        if found is None:
            found = self._parse(name, is_closed, is_won)
            if len(self._parsed) < 10_000:
                self._parsed[cache_key] = found
        return found

    def _parse(self, name: str, is_closed: bool | None, is_won: bool | None) -> Stage:
        key = squash(name)
        number = _NUMBERED.match(name)
        order = int(number.group(1)) if number else None
        rest = squash(name[number.end() :]) if number else key
        order = self._orders.get(key, order)
        kind = StageKind.OPEN
        if key in self._won or rest in self._won:
            kind = StageKind.WON
        elif key in self._lost or rest in self._lost:
            kind = StageKind.LOST
        if is_closed is not None or is_won is not None:
            kind = _kind_from_flags(kind, is_closed, is_won)
        return Stage(name=name.strip(), order=order, kind=kind)


def _kind_from_flags(kind: StageKind, is_closed: bool | None, is_won: bool | None) -> StageKind:
    if is_won:
        return StageKind.WON
    if is_closed is False:
        return StageKind.OPEN
    if is_closed and is_won is False:
        return StageKind.LOST
    return kind


_CATEGORIES: Mapping[str, ForecastCategory] = MappingProxyType(
    {
        "pipeline": ForecastCategory.PIPELINE,
        "bestcase": ForecastCategory.BEST_CASE,
        "commit": ForecastCategory.COMMIT,
        "forecast": ForecastCategory.COMMIT,  # Salesforce's API name for Commit
        "closed": ForecastCategory.CLOSED,
        "omitted": ForecastCategory.OMITTED,
        "notforecasted": ForecastCategory.OMITTED,  # HubSpot's NOT_FORECASTED
    }
)


def parse_forecast_category(value: str | None) -> ForecastCategory | None:
    """Salesforce's and HubSpot's spellings of a forecast category; None when unknown."""
    return None if value is None else _CATEGORIES.get(squash(value))


def forecast_category(given: str | ForecastCategory | None, stage: Stage) -> ForecastCategory:
    """The category to report: the closed stages decide, else the CRM's, else Pipeline.

    Salesforce ties Closed Won to ``Closed`` and Closed Lost to ``Omitted`` whatever the
    field says, so a stale category never shows won or lost money as open.
    """
    if stage.kind is StageKind.WON:
        return ForecastCategory.CLOSED
    if stage.kind is StageKind.LOST:
        return ForecastCategory.OMITTED
    parsed = given if isinstance(given, ForecastCategory) else parse_forecast_category(given)
    if parsed is None or parsed is ForecastCategory.CLOSED:
        return ForecastCategory.PIPELINE
    return parsed
