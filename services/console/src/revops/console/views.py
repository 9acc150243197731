"""What the pages show, computed from the APIs' answers: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from revops.console.formats import day, label, to_decimal


@dataclass(frozen=True)
class CategoryChange:
    category: str
    amount: Decimal
    previous: Decimal | None  # None: only one snapshot
    count: int

    @property
    def delta(self) -> Decimal | None:
        return None if self.previous is None else self.amount - self.previous


@dataclass(frozen=True)
class ForecastTrend:
    labels: list[str]  # one per snapshot, oldest first
    amounts: dict[str, list[Decimal]]  # per forecast category, one value per snapshot
    changes: list[CategoryChange]  # the latest snapshot against the one before


def _open_by_category(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    """A listed snapshot carries its totals by category; a whole one has them inside."""
    found = snapshot.get("open_by_category")
    if found is None:
        contents = snapshot.get("contents") or {}
        found = (contents.get("total") or {}).get("open_by_category") or {}
    return found if isinstance(found, Mapping) else {}


def forecast_trend(snapshots: Sequence[Mapping[str, Any]]) -> ForecastTrend:
    """Open pipeline by forecast category across snapshots (given oldest first); a
    category missing from a snapshot had nothing in it then."""
    categories: list[str] = []
    for snapshot in snapshots:
        for name in _open_by_category(snapshot):
            if name not in categories:
                categories.append(name)
    amounts: dict[str, list[Decimal]] = {c: [] for c in categories}
    counts: dict[str, int] = {}
    for snapshot in snapshots:
        figures = _open_by_category(snapshot)
        for name in categories:
            bucket = figures.get(name) or {}
            amounts[name].append(to_decimal(bucket.get("amount")) or Decimal(0))
            counts[name] = int(bucket.get("count") or 0)
    changes = [
        CategoryChange(
            category=name,
            amount=values[-1],
            previous=values[-2] if len(values) > 1 else None,
            count=counts.get(name, 0),
        )
        for name, values in amounts.items()
    ]
    labels = [day(s.get("as_of")) for s in snapshots]
    return ForecastTrend(labels=labels, amounts=amounts, changes=changes)


def amount_bars(lines: Sequence[Mapping[str, Any]], key: str = "key") -> list[tuple[str, Decimal]]:
    """(label, amount) per report line, the largest first; an empty key is "(none)"."""
    bars = [
        (
            str(line.get(key)) if line.get(key) else "(none)",
            to_decimal(line.get("amount")) or Decimal(0),
        )
        for line in lines
    ]
    return sorted(bars, key=lambda bar: bar[1], reverse=True)


def count_bars(lines: Sequence[Mapping[str, Any]], key: str = "key") -> list[tuple[str, int]]:
    bars = [
        (str(line.get(key)) if line.get(key) else "(none)", int(line.get("opportunities") or 0))
        for line in lines
    ]
    return sorted(bars, key=lambda bar: bar[1], reverse=True)


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: str
    opportunities: int
    credited_amount: dict[str, Decimal]  # per model


def campaign_table(by_campaign: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[CampaignRow]:
    """One row per campaign with its credited amount under each model, the campaigns
    with the most credit (summed over models) first."""
    rows: dict[str, CampaignRow] = {}
    for model, lines in by_campaign.items():
        for line in lines:
            campaign = str(line.get("campaign_id"))
            row = rows.setdefault(campaign, CampaignRow(campaign, 0, {}))
            amount = to_decimal(line.get("credited_amount")) or Decimal(0)
            row.credited_amount[model] = amount
            opportunities = int(line.get("opportunities") or 0)
            if opportunities > row.opportunities:
                rows[campaign] = CampaignRow(campaign, opportunities, row.credited_amount)
    return sorted(
        rows.values(),
        key=lambda r: (-sum(r.credited_amount.values(), Decimal(0)), r.campaign_id),
    )


def category_bars(
    figures: Mapping[str, Any], categories: Sequence[str]
) -> list[tuple[str, Decimal]]:
    """Open pipeline per forecast category, the largest first."""
    bars = [
        (label(name), bucket_amount(figures, "total", "open_by_category", name, "amount"))
        for name in categories
    ]
    return sorted(bars, key=lambda bar: bar[1], reverse=True)


def bucket_amount(figures: Mapping[str, Any], *path: str) -> Decimal:
    """An amount deep in the pipeline's figures, 0 when absent."""
    node: Any = figures
    for step in path:
        node = node.get(step) if isinstance(node, Mapping) else None
    return to_decimal(node) or Decimal(0)


@dataclass(frozen=True)
class Pager:
    """Where a table's page stands in its list: the rows shown (counted from 1), the
    list's total, and the query strings of the pages before and after (None: none)."""

    first: int  # 0: no row shown
    last: int
    total: int
    previous: str | None
    next: str | None


def pager(
    params: Mapping[str, str], key: str, offset: int, limit: int, shown: int, total: int
) -> Pager:
    """The pager of a table whose page starts at ``offset`` (the query parameter
    ``key``); its links keep the page's other parameters, the other tables' pages too."""

    def at(start: int) -> str:
        query: dict[str, str | int] = {k: v for k, v in params.items() if k != key}
        if start:  # the first page goes without its parameter
            query[key] = start
        return "?" + urlencode(query)

    previous = at(max(min(offset, total) - limit, 0)) if offset > 0 else None
    following = at(offset + limit) if offset + shown < total else None
    first = offset + 1 if shown else 0
    return Pager(first, offset + shown, total, previous, following)
