"""Campaign influence and credit per model (RULES.md "Campaign influence").

The journey of opportunity O created at T: every form submission (campaign
membership) of the converted lead and of the account's contacts dated in the 30
days up to T (T - 30 days <= touched_at <= T). The primary campaign is the
converting lead's last form at or before T.

Positions, as Marketo Measure names them, on the journey sorted by time:
- FT, first touch: the earliest touch of the journey;
- LC, lead creation: the touch that created the converted lead when it lies in the
  journey, else the converted lead's earliest touch in the journey, else FT (a lead
  created by a sign-up or more than 30 days ago has no lead-creation form in the
  window, and its credit must still land somewhere);
- OC, opportunity creation: the touch closest before T, i.e. the last one;
- CW, closed won: the touch closest before the close. The journey ends at T, so it is
  the last touch too -- for an open opportunity this is Marketo's "Pending"
  position, which also rolls to the most recent touch.

When positions fall on the same touch their shares add. The share spread over the
other touches ("the rest": 10% in W-shaped and full path) is spread evenly; when
there are no other touches it goes to the peaks in proportion to their shares, so
the credits of one opportunity under one model always sum to exactly 1. Credits are
Decimals rounded to `InfluencePolicy.precision` by largest remainder, so the rounded
credits still sum to exactly 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from fractions import Fraction
from functools import lru_cache


class AttributionModel(StrEnum):
    FIRST_TOUCH = "first_touch"
    LEAD_CREATION = "lead_creation"
    U_SHAPED = "u_shaped"
    W_SHAPED = "w_shaped"
    FULL_PATH = "full_path"
    LINEAR = "linear"
    LAST_TOUCH = "last_touch"
    TIME_DECAY = "time_decay"


class Position(StrEnum):
    FIRST_TOUCH = "FT"
    LEAD_CREATION = "LC"
    OPPORTUNITY_CREATION = "OC"
    CLOSED_WON = "CW"


@dataclass(frozen=True)
class InfluencePolicy:
    window: timedelta = timedelta(days=30)
    half_life: timedelta = timedelta(days=7)
    u_shaped_peak: Fraction = Fraction(1, 2)
    w_shaped_peak: Fraction = Fraction(3, 10)
    full_path_peak: Fraction = Fraction(225, 1000)
    precision: Decimal = Decimal("0.000001")

    def __post_init__(self) -> None:
        if not (0 < self.u_shaped_peak <= 1 and 0 < 3 * self.w_shaped_peak <= 1):
            raise ValueError("U- and W-shaped peak shares must be positive and fit in 1")
        if not 0 < 4 * self.full_path_peak <= 1:
            raise ValueError("full-path peak shares must be positive and fit in 1")
        if self.window < timedelta(0) or self.half_life <= timedelta(0):
            raise ValueError("the window must not be negative and the half-life must be positive")


DEFAULT_INFLUENCE_POLICY = InfluencePolicy()


@dataclass(frozen=True)
class CampaignTouch:
    """One campaign membership: a person's form submission for a campaign."""

    touch_id: str
    person_id: str
    campaign_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class TouchCredit:
    touch: CampaignTouch
    positions: frozenset[Position]
    credit: Mapping[AttributionModel, Decimal]


@dataclass(frozen=True)
class CampaignInfluence:
    opportunity_created_at: datetime
    primary_campaign_id: str | None
    primary_touch_id: str | None
    touches: tuple[TouchCredit, ...]

    def by_campaign(self, model: AttributionModel) -> dict[str, Decimal]:
        """Credit per campaign under one model; sums to 1 when there is any touch."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for touch in self.touches:
            totals[touch.touch.campaign_id] += touch.credit[model]
        return dict(totals)


def _order(touch: CampaignTouch) -> tuple[datetime, str]:
    return (touch.occurred_at, touch.touch_id)


def in_window(
    touched_at: datetime,
    opportunity_created_at: datetime,
    policy: InfluencePolicy = DEFAULT_INFLUENCE_POLICY,
) -> bool:
    """Inclusive on both ends: exactly 30 days before T counts, and so does T itself."""
    return touched_at <= opportunity_created_at and (
        opportunity_created_at - touched_at <= policy.window
    )


def influencing_touches(
    touches: Iterable[CampaignTouch],
    opportunity_created_at: datetime,
    policy: InfluencePolicy = DEFAULT_INFLUENCE_POLICY,
) -> tuple[CampaignTouch, ...]:
    """The journey: touches in the window, in time order, one per touch id."""
    unique = {t.touch_id: t for t in touches}
    chosen = (
        t for t in unique.values() if in_window(t.occurred_at, opportunity_created_at, policy)
    )
    return tuple(sorted(chosen, key=_order))


def primary_touch(
    touches: Iterable[CampaignTouch], converting_person_id: str, opportunity_created_at: datetime
) -> CampaignTouch | None:
    """The converting lead's last form at or before T (any age, as Salesforce's
    Primary Campaign Source: the campaign the lead last responded to)."""
    own = (
        t
        for t in touches
        if t.person_id == converting_person_id and t.occurred_at <= opportunity_created_at
    )
    return max(own, key=_order, default=None)


def journey_positions(
    journey: Sequence[CampaignTouch],
    converting_person_id: str | None,
    lead_creation_touch_id: str | None = None,
) -> dict[Position, int]:
    """Index in the journey of each milestone position (see the module's docstring)."""
    if not journey:
        return {}
    last = len(journey) - 1
    return {
        Position.FIRST_TOUCH: 0,
        Position.LEAD_CREATION: _lead_creation_index(
            journey, converting_person_id, lead_creation_touch_id
        ),
        Position.OPPORTUNITY_CREATION: last,
        Position.CLOSED_WON: last,
    }


def _lead_creation_index(
    journey: Sequence[CampaignTouch],
    converting_person_id: str | None,
    lead_creation_touch_id: str | None,
) -> int:
    for index, touch in enumerate(journey):
        if lead_creation_touch_id is not None and touch.touch_id == lead_creation_touch_id:
            return index
    for index, touch in enumerate(journey):
        if touch.person_id == converting_person_id:
            return index
    return 0


def _positional(
    size: int, peaks: Sequence[tuple[int, Fraction]], rest_share: Fraction
) -> list[Fraction]:
    weights = [Fraction(0)] * size
    for index, share in peaks:
        weights[index] += share
    peak_indices = {index for index, _ in peaks}
    rest = [i for i in range(size) if i not in peak_indices]
    if rest:
        for i in rest:
            weights[i] += rest_share / len(rest)
        return weights
    # No touch outside the peaks: their shares are scaled up to take the rest too.
    total = sum(weights, Fraction(0))
    return [w / total for w in weights]


def _time_decay(
    journey: Sequence[CampaignTouch], opportunity_created_at: datetime, half_life: timedelta
) -> list[Fraction]:
    raw = [Fraction(2 ** -((opportunity_created_at - t.occurred_at) / half_life)) for t in journey]
    total = sum(raw, Fraction(0))
    return [w / total for w in raw]


def model_weights(
    model: AttributionModel,
    journey: Sequence[CampaignTouch],
    positions: Mapping[Position, int],
    opportunity_created_at: datetime,
    policy: InfluencePolicy = DEFAULT_INFLUENCE_POLICY,
) -> list[Fraction]:
    """Exact (unrounded) share of each touch of the journey under one model."""
    size = len(journey)
    if size == 0:
        return []
    ft = positions[Position.FIRST_TOUCH]
    lc = positions[Position.LEAD_CREATION]
    oc = positions[Position.OPPORTUNITY_CREATION]
    cw = positions[Position.CLOSED_WON]
    zero, one = Fraction(0), Fraction(1)
    match model:
        case AttributionModel.FIRST_TOUCH:
            return _positional(size, [(ft, one)], zero)
        case AttributionModel.LEAD_CREATION:
            return _positional(size, [(lc, one)], zero)
        case AttributionModel.LAST_TOUCH:
            return _positional(size, [(oc, one)], zero)
        case AttributionModel.U_SHAPED:
            peak = policy.u_shaped_peak
            return _positional(size, [(ft, peak), (lc, one - peak)], zero)
        case AttributionModel.W_SHAPED:
            peak = policy.w_shaped_peak
            return _positional(size, [(ft, peak), (lc, peak), (oc, peak)], one - 3 * peak)
        case AttributionModel.FULL_PATH:
            peak = policy.full_path_peak
            peaks = [(ft, peak), (lc, peak), (oc, peak), (cw, peak)]
            return _positional(size, peaks, one - 4 * peak)
        case AttributionModel.LINEAR:
            return _positional(size, [], one)
        case AttributionModel.TIME_DECAY:
            return _time_decay(journey, opportunity_created_at, policy.half_life)


def model_credits(
    model: AttributionModel,
    journey: Sequence[CampaignTouch],
    positions: Mapping[Position, int],
    opportunity_created_at: datetime,
    policy: InfluencePolicy = DEFAULT_INFLUENCE_POLICY,
) -> list[Decimal]:
    """Rounded credit of each touch of the journey under one model; sums to exactly 1."""
    if not journey:
        return []
    if model is AttributionModel.TIME_DECAY:
        weights = model_weights(model, journey, positions, opportunity_created_at, policy)
        return round_shares(weights, policy.precision)
    # Positional models depend only on the journey's length and its milestones' places,
    # which repeat endlessly: computed once per shape.
    shape = tuple(positions[p] for p in Position)
    return list(_positional_credits(model, len(journey), shape, policy))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=8192)
def _positional_credits(
    model: AttributionModel, size: int, shape: tuple[int, ...], policy: InfluencePolicy
) -> tuple[Decimal, ...]:
    positions = dict(zip(Position, shape, strict=True))
    # The journey's touches matter only through their count here.
    placeholder = [CampaignTouch("", "", "", _EPOCH)] * size
    weights = model_weights(model, placeholder, positions, _EPOCH, policy)
    return tuple(round_shares(weights, policy.precision))


def round_shares(shares: Sequence[Fraction], precision: Decimal) -> list[Decimal]:
    """Round shares that sum to 1 so that the rounded values sum to exactly 1:
    floor each, then hand the missing units to the largest remainders (earliest
    touch first on a tie, so the answer is the same on every replay)."""
    if not shares:
        return []
    units_per_one = int(1 / precision)
    scaled = [share * units_per_one for share in shares]
    floors = [int(s.numerator // s.denominator) for s in scaled]
    missing = units_per_one - sum(floors)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(scaled[i] - floors[i]), i))
    for i in by_remainder[:missing]:
        floors[i] += 1
    return [(Decimal(units) * precision).quantize(precision, ROUND_FLOOR) for units in floors]


def campaign_influence(
    touches: Iterable[CampaignTouch],
    *,
    opportunity_created_at: datetime,
    converting_person_id: str | None,
    lead_creation_touch_id: str | None = None,
    models: Iterable[AttributionModel] = tuple(AttributionModel),
    policy: InfluencePolicy = DEFAULT_INFLUENCE_POLICY,
) -> CampaignInfluence:
    """The influencing touches of one opportunity with their credit under each model.

    `touches` may hold anything known about the account's people: the window is
    applied here, so a late form that happened in time counts and one after T never
    does. `converting_person_id` is None for an opportunity without a converted lead.
    """
    touches = tuple(touches)
    journey = influencing_touches(touches, opportunity_created_at, policy)
    positions = journey_positions(journey, converting_person_id, lead_creation_touch_id)
    credit_columns = {
        model: model_credits(model, journey, positions, opportunity_created_at, policy)
        for model in models
    }
    primary = (
        primary_touch(touches, converting_person_id, opportunity_created_at)
        if converting_person_id is not None
        else None
    )
    return CampaignInfluence(
        opportunity_created_at=opportunity_created_at,
        primary_campaign_id=primary.campaign_id if primary else None,
        primary_touch_id=primary.touch_id if primary else None,
        touches=tuple(
            TouchCredit(
                touch=touch,
                positions=frozenset(p for p, i in positions.items() if i == index),
                credit={model: column[index] for model, column in credit_columns.items()},
            )
            for index, touch in enumerate(journey)
        ),
    )
