"""The weekly company forecast, per owner and in total, as of a moment.

Input is one plain row per opportunity as it stood at that moment (the database
produces those rows in one query; see ``models``) and the renewals; the work here is a
single pass with running sums, so 100,000 opportunities take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from revops.renewals.domain.stages import ForecastCategory, Stage, StageKind


@dataclass(frozen=True)
class OpportunityAsOf:
    opportunity_id: str
    owner_id: str | None
    stage: Stage | None
    amount: Decimal | None
    forecast_category: ForecastCategory | None
    nbm_at: datetime | None
    qualified_at: datetime | None
    closed_at: datetime | None  # when it entered the closed stage it is in at that moment
    is_renewal: bool = False  # renewals are not New Business Meetings


@dataclass(frozen=True)
class RenewalAsOf:
    renewal_id: str
    owner_id: str | None
    amount: Decimal | None
    close_date: date
    created_at: datetime
    ended_at: datetime | None = None  # cancelled, won or lost: no longer due from then


@dataclass(frozen=True)
class RenewalHistory:
    """A renewal with what the stage history says at a moment: the stage kind of the
    opportunity it renews (None: no version yet) and of the renewal's own CRM opportunity
    (None: it has none, or none yet), each from the version in force then."""

    renewal_id: str
    owner_id: str | None
    amount: Decimal | None
    close_date: date
    cancelled_at: datetime | None  # set when it is cancelled now (a later win may reopen it)
    source_kind: StageKind | None
    source_since: datetime | None  # when the source's version in force began
    own_kind: StageKind | None = None


def renewal_as_of(renewal: RenewalHistory, as_of: datetime) -> RenewalAsOf | None:
    """The renewal as it stood at ``as_of``, when it was due then: the opportunity it
    renews was Closed Won at that moment (a win undone later does not reach back, nor does
    a reinstatement), and its own CRM opportunity, if any, was not closed yet."""
    if renewal.source_kind is not StageKind.WON or renewal.source_since is None:
        return None
    if renewal.own_kind in (StageKind.WON, StageKind.LOST):
        return None
    # Cancelled now while the source still stands won: it stopped being renewable (its
    # type or pipeline changed), which the stage history does not show; from then on.
    if renewal.cancelled_at is not None and renewal.cancelled_at <= as_of:
        return None
    return RenewalAsOf(
        renewal.renewal_id,
        renewal.owner_id,
        renewal.amount,
        renewal.close_date,
        created_at=renewal.source_since,
    )


@dataclass(frozen=True)
class Quarter:
    start: date
    end: date  # inclusive

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class Periods:
    as_of: datetime
    period_start: datetime  # NBMs and qualified in (period_start, as_of]
    quarter_start: datetime  # won and lost in [quarter_start, as_of]
    next_quarter: Quarter  # renewals due (close date) in it


@dataclass(frozen=True)
class Bucket:
    count: int = 0
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class Figures:
    open_by_category: dict[str, Bucket] = field(default_factory=dict)
    open_by_stage: dict[str, Bucket] = field(default_factory=dict)
    open: Bucket = Bucket()
    qualified_pipeline: Bucket = Bucket()  # open at stage 2 or beyond
    nbms: int = 0
    qualified: int = 0
    won_this_quarter: Bucket = Bucket()
    lost_this_quarter: Bucket = Bucket()
    renewals_due_next_quarter: Bucket = Bucket()


@dataclass(frozen=True)
class Forecast:
    periods: Periods
    total: Figures
    by_owner: dict[str, Figures]


def quarter_of(day: date, fiscal_year_start_month: int = 1) -> Quarter:
    offset = (day.month - fiscal_year_start_month) % 3
    start_index = day.year * 12 + day.month - 1 - offset
    start = date(start_index // 12, start_index % 12 + 1, 1)
    end_index = start_index + 3
    end = date.fromordinal(date(end_index // 12, end_index % 12 + 1, 1).toordinal() - 1)
    return Quarter(start, end)


def periods_for(
    as_of: datetime,
    period_start: datetime,
    timezone: str = "America/Los_Angeles",
    fiscal_year_start_month: int = 1,
) -> Periods:
    """The quarter is the company's, in its own time zone (Q1 starts at local midnight)."""
    zone = ZoneInfo(timezone)
    quarter = quarter_of(as_of.astimezone(zone).date(), fiscal_year_start_month)
    following = quarter_of(date.fromordinal(quarter.end.toordinal() + 1), fiscal_year_start_month)
    start = datetime.combine(quarter.start, time(0), tzinfo=zone).astimezone(UTC)
    return Periods(as_of, period_start, start, following)


@dataclass(frozen=True)
class OpportunityGroup:
    """Opportunities that count the same way in a snapshot, with their number and sum.

    The database can produce these directly (one GROUP BY instead of 100,000 rows); the
    in-memory path makes one per opportunity with ``group_of``.
    """

    owner_id: str | None
    stage: Stage | None
    forecast_category: ForecastCategory | None
    nbm_in_period: bool
    qualified_in_period: bool
    closed_in_quarter: bool
    count: int = 1
    amount: Decimal = Decimal(0)


def group_of(row: OpportunityAsOf, periods: Periods) -> OpportunityGroup:
    """Which of the period's figures one opportunity (as of ``periods.as_of``) falls in."""
    start, end = periods.period_start, periods.as_of
    meeting = not row.is_renewal  # renewals are not New Business Meetings
    return OpportunityGroup(
        owner_id=row.owner_id,
        stage=row.stage,
        forecast_category=row.forecast_category,
        nbm_in_period=meeting and row.nbm_at is not None and start < row.nbm_at <= end,
        qualified_in_period=meeting
        and row.qualified_at is not None
        and start < row.qualified_at <= end,
        closed_in_quarter=row.closed_at is not None
        and periods.quarter_start <= row.closed_at <= end,
        amount=row.amount if row.amount is not None else Decimal(0),
    )


class _Sums:
    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.sums: dict[tuple[str, str], Decimal] = {}

    def add(self, kind: str, key: str, count: int, amount: Decimal) -> None:
        k = (kind, key)
        self.counts[k] = self.counts.get(k, 0) + count
        self.sums[k] = self.sums.get(k, Decimal(0)) + amount

    def bucket(self, kind: str, key: str = "") -> Bucket:
        k = (kind, key)
        return Bucket(self.counts.get(k, 0), self.sums.get(k, Decimal(0)))

    def buckets(self, kind: str) -> dict[str, Bucket]:
        return {key: self.bucket(kind, key) for (k, key) in sorted(self.counts) if k == kind}

    def figures(self) -> Figures:
        return Figures(
            open_by_category=self.buckets("category"),
            open_by_stage=self.buckets("stage"),
            open=self.bucket("open"),
            qualified_pipeline=self.bucket("qualified_pipeline"),
            nbms=self.counts.get(("nbm", ""), 0),
            qualified=self.counts.get(("qualified", ""), 0),
            won_this_quarter=self.bucket("won"),
            lost_this_quarter=self.bucket("lost"),
            renewals_due_next_quarter=self.bucket("renewals_due"),
        )


_NOTHING = Decimal(0)


def _facts(group: OpportunityGroup, qualified_stage: int) -> list[tuple[str, str, Decimal]]:
    """The figures a group adds to: open pipeline by category and stage, qualified
    pipeline, won or lost this quarter, NBMs and qualified of the period."""
    facts: list[tuple[str, str, Decimal]] = []
    stage, amount = group.stage, group.amount
    if stage is not None and not stage.is_closed:
        category = (group.forecast_category or ForecastCategory.PIPELINE).value
        facts += [("open", "", amount), ("category", category, amount)]
        facts.append(("stage", stage.name, amount))
        if stage.reaches(qualified_stage):
            facts.append(("qualified_pipeline", "", amount))
    elif stage is not None and group.closed_in_quarter:
        facts.append(("won" if stage.is_won else "lost", "", amount))
    if group.nbm_in_period:
        facts.append(("nbm", "", _NOTHING))
    if group.qualified_in_period:
        facts.append(("qualified", "", _NOTHING))
    return facts


def take_snapshot(
    opportunities: Iterable[OpportunityAsOf],
    renewals: Iterable[RenewalAsOf],
    periods: Periods,
    qualified_stage: int = 2,
) -> Forecast:
    """The forecast as of ``periods.as_of``; rows must already be as of that moment."""
    groups = (group_of(row, periods) for row in opportunities)
    return aggregate(groups, renewals, periods, qualified_stage)


def aggregate(
    groups: Iterable[OpportunityGroup],
    renewals: Iterable[RenewalAsOf],
    periods: Periods,
    qualified_stage: int = 2,
) -> Forecast:
    """The forecast from opportunity groups (see ``OpportunityGroup``) and renewals."""
    total = _Sums()
    owners: dict[str, _Sums] = {}
    for group in groups:
        owner = owners.setdefault(group.owner_id or "", _Sums())
        for kind, key, amount in _facts(group, qualified_stage):
            total.add(kind, key, group.count, amount)
            owner.add(kind, key, group.count, amount)
    for renewal in renewals:
        if _due(renewal, periods):
            owner = owners.setdefault(renewal.owner_id or "", _Sums())
            amount = renewal.amount if renewal.amount is not None else Decimal(0)
            total.add("renewals_due", "", 1, amount)
            owner.add("renewals_due", "", 1, amount)
    by_owner = {owner: sums.figures() for owner, sums in sorted(owners.items())}
    return Forecast(periods=periods, total=total.figures(), by_owner=by_owner)


def _due(renewal: RenewalAsOf, periods: Periods) -> bool:
    existed = renewal.created_at <= periods.as_of
    still_open = renewal.ended_at is None or renewal.ended_at > periods.as_of
    return existed and still_open and periods.next_quarter.contains(renewal.close_date)


def _bucket_json(bucket: Bucket) -> dict[str, Any]:
    return {"count": bucket.count, "amount": str(bucket.amount)}


def figures_json(figures: Figures) -> dict[str, Any]:
    """Plain JSON (amounts as decimal strings, never floats) for storage and the API."""
    return {
        "open_by_category": {k: _bucket_json(b) for k, b in figures.open_by_category.items()},
        "open_by_stage": {k: _bucket_json(b) for k, b in figures.open_by_stage.items()},
        "open": _bucket_json(figures.open),
        "qualified_pipeline": _bucket_json(figures.qualified_pipeline),
        "nbms": figures.nbms,
        "qualified": figures.qualified,
        "won_this_quarter": _bucket_json(figures.won_this_quarter),
        "lost_this_quarter": _bucket_json(figures.lost_this_quarter),
        "renewals_due_next_quarter": _bucket_json(figures.renewals_due_next_quarter),
    }


def forecast_json(forecast: Forecast) -> dict[str, Any]:
    p = forecast.periods
    return {
        "as_of": p.as_of.isoformat(),
        "period_start": p.period_start.isoformat(),
        "quarter_start": p.quarter_start.isoformat(),
        "next_quarter": {
            "start": p.next_quarter.start.isoformat(),
            "end": p.next_quarter.end.isoformat(),
        },
        "total": figures_json(forecast.total),
        "by_owner": {owner: figures_json(f) for owner, f in forecast.by_owner.items()},
    }


@dataclass(frozen=True)
class PeriodMetrics:
    nbms: int
    qualified: int
    won: Bucket
    lost: Bucket
    cycle_days: tuple[float, ...]  # qualified -> won, of the deals won in the period

    @property
    def mean_cycle_days(self) -> float | None:
        return sum(self.cycle_days) / len(self.cycle_days) if self.cycle_days else None

    @property
    def median_cycle_days(self) -> float | None:
        days = sorted(self.cycle_days)
        if not days:
            return None
        mid = len(days) // 2
        return days[mid] if len(days) % 2 else (days[mid - 1] + days[mid]) / 2


def period_metrics(
    rows: Iterable[OpportunityAsOf], start: datetime, end: datetime
) -> PeriodMetrics:
    """NBMs, qualified, won and lost in [start, end), rows as of ``end``.

    Cycle time runs from the qualified date (never the creation date) to the win; a deal
    won without ever being seen at stage 2 qualified when it was won (0 days).
    """
    nbms = qualified = won_n = lost_n = 0
    won_sum = lost_sum = Decimal(0)
    cycles: list[float] = []
    for row in rows:
        if not row.is_renewal:
            nbms += row.nbm_at is not None and start <= row.nbm_at < end
            qualified += row.qualified_at is not None and start <= row.qualified_at < end
        if row.stage is None or row.closed_at is None or not start <= row.closed_at < end:
            continue
        if row.stage.is_won:
            won_n += 1
            won_sum += row.amount or 0
            if row.qualified_at is not None:
                cycles.append(max((row.closed_at - row.qualified_at).total_seconds(), 0) / 86400)
        elif row.stage.is_closed:
            lost_n += 1
            lost_sum += row.amount or 0
    return PeriodMetrics(
        nbms, qualified, Bucket(won_n, won_sum), Bucket(lost_n, lost_sum), tuple(cycles)
    )
