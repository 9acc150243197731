"""Assign AE: who gets the opportunity when an SDR converts a lead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from revops.router.domain.reps import Rep
from revops.router.domain.rotation import Turn, next_turn
from revops.router.domain.rules import (
    Account,
    Opportunity,
    QueueSnapshot,
    RoutingPolicy,
    Touch,
)
from revops.router.domain.windows import utc_day, within_days

AeRule = Literal["pair_touch", "closed_opportunity", "round_robin", "unassigned"]


def ae_queue(region: str) -> str:
    return f"ae-{region}"


@dataclass(frozen=True)
class AeAssignment:
    rule: AeRule
    ae_id: str | None
    reason: str
    queue: str | None = None
    turn: Turn | None = None


def pair_ae_of(rep: Rep, reps: Mapping[str, Rep]) -> Rep | None:
    """The AE a rep's touch speaks for: the AE themself, or the AE an SDR is paired with.

    An SDR paired with several AEs (the data allows it) speaks for the smallest id.
    """
    if rep.role == "AE":
        return rep if rep.may_claim() else None
    aes = sorted(
        (r for r in reps.values() if r.role == "AE" and r.paired_sdr_id == rep.id),
        key=lambda r: r.id,
    )
    aes = [ae for ae in aes if ae.may_claim()]
    return aes[0] if aes else None


def assign_ae(
    account: Account,
    converted_at: datetime,
    reps: Mapping[str, Rep],
    touches: Sequence[Touch],
    opportunities: Sequence[Opportunity],
    queue: QueueSnapshot | None,
    policy: RoutingPolicy,
) -> AeAssignment:
    """The handbook's order: a pair working the account, an AE who recently closed there,
    else the region's AE rotation (certified AEs only)."""
    by_pair = _pair_touch(account, converted_at, reps, touches, policy)
    if by_pair is not None:
        return by_pair
    by_closed = _recently_closed(account, converted_at, reps, opportunities, policy)
    if by_closed is not None:
        return by_closed
    if queue is None:
        return AeAssignment("unassigned", None, f"No AE rotation for {account.label}'s region")
    turn = next_turn(queue.members, queue.state, queue.assigned_today)
    if turn is None:
        return AeAssignment("unassigned", None, f"Nobody eligible in {queue.name}", queue.name)
    return AeAssignment(
        "round_robin",
        turn.rep_id,
        f"Round robin of {queue.name}: turn {turn.slot} to AE {turn.rep_id}",
        queue.name,
        turn,
    )


def _pair_touch(
    account: Account,
    converted_at: datetime,
    reps: Mapping[str, Rep],
    touches: Sequence[Touch],
    policy: RoutingPolicy,
) -> AeAssignment | None:
    best: tuple[Touch, Rep, Rep] | None = None
    for touch in touches:
        rep = reps.get(touch.rep_id)
        if rep is None:
            continue
        if not within_days(touch.at, converted_at, policy.recent_touch_days):
            continue
        ae = pair_ae_of(rep, reps)
        newer = best is None or (touch.at, touch.rep_id) > (best[0].at, best[0].rep_id)
        if ae is not None and newer:
            best = (touch, rep, ae)
    if best is None:
        return None
    touch, rep, ae = best
    via = "" if rep.id == ae.id else f" (pair of {rep.label})"
    reason = f"AE {ae.id}{via}: {rep.label} touched {account.label} on {utc_day(touch.at)}"
    return AeAssignment("pair_touch", ae.id, reason)


def _recently_closed(
    account: Account,
    converted_at: datetime,
    reps: Mapping[str, Rep],
    opportunities: Sequence[Opportunity],
    policy: RoutingPolicy,
) -> AeAssignment | None:
    closed = [
        opp
        for opp in opportunities
        if opp.account_id == account.account_id
        and opp.is_closed
        and opp.closed_on is not None
        and opp.owner_id is not None
        and opp.owner_id in reps
        and reps[opp.owner_id].role == "AE"
        and reps[opp.owner_id].may_claim()
        and within_days(opp.closed_on, converted_at, policy.closed_opportunity_days)
    ]
    if not closed:
        return None
    opp = max(closed, key=lambda o: (o.closed_on, o.opportunity_id))
    reason = (
        f"AE {opp.owner_id} closed opportunity {opp.opportunity_id} on {account.label} "
        f"on {opp.closed_on}"
    )
    return AeAssignment("closed_opportunity", opp.owner_id, reason)
