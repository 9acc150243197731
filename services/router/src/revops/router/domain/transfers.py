"""Account transfers between AEs, and who is credited with an SAO afterwards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from revops.router.domain.reps import Rep
from revops.router.domain.rules import RoutingPolicy
from revops.router.domain.windows import days_between, utc_day


@dataclass(frozen=True)
class LeadMove:
    lead_id: str
    from_sdr_id: str | None
    to_sdr_id: str
    transferred_at: datetime


@dataclass(frozen=True)
class TransferOutcome:
    previous_sdr_id: str | None
    new_sdr_id: str | None
    notify: tuple[str, ...]  # the SDRs to tell; empty when nobody is removed from the account
    moves: tuple[LeadMove, ...]
    message: str


def paired_sdr(ae_id: str | None, reps: Mapping[str, Rep]) -> str | None:
    rep = reps.get(ae_id) if ae_id else None
    return rep.paired_sdr_id if rep is not None else None


def transfer_account(
    account_label: str,
    previous_ae_id: str | None,
    new_ae_id: str | None,
    reps: Mapping[str, Rep],
    open_lead_ids: Sequence[str],
    at: datetime,
    previous_sdr_id: str | None = None,
) -> TransferOutcome:
    """An account's owner changed from ``previous_ae_id`` to ``new_ae_id`` at ``at``.

    Only an SDR being removed from an account is news: a greenfield account picked up,
    or a move between AEs who share their SDR, notifies nobody and moves nothing. An
    account left without an AE keeps its SDR until an AE owns it again.
    ``previous_sdr_id`` is the account's SDR as recorded, when known (it survives a
    spell without an owner); else the previous AE's pair.
    """
    before = previous_sdr_id or paired_sdr(previous_ae_id, reps)
    after = paired_sdr(new_ae_id, reps)
    if new_ae_id is None or after is None or before is None or before == after:
        kept = before if after is None else after
        return TransferOutcome(before, kept, (), (), "")
    moves = tuple(LeadMove(lead_id, before, after, at) for lead_id in sorted(open_lead_ids))
    message = transfer_message(account_label, previous_ae_id, new_ae_id, at, before, after, moves)
    return TransferOutcome(before, after, (before, after), moves, message)


def transfer_message(
    account_label: str,
    previous_ae_id: str | None,
    new_ae_id: str,
    at: datetime,
    from_sdr_id: str,
    to_sdr_id: str,
    moves: Sequence[object],
) -> str:
    """What both SDRs are told of a transfer."""
    return (
        f"{account_label} moved from AE {previous_ae_id or '(none)'} to AE {new_ae_id} on "
        f"{utc_day(at)}: SDR {from_sdr_id} hands {len(moves)} open lead(s) to SDR {to_sdr_id}"
    )


def sao_credit(move: LeadMove, sao_created_at: datetime, policy: RoutingPolicy) -> str:
    """The SDR credited with an SAO created from a moved lead.

    The previous SDR keeps the credit for ``transfer_credit_days`` calendar days after the
    transfer (day 14 included); from day 15 the new SDR has it.
    """
    if move.from_sdr_id is None:
        return move.to_sdr_id
    if days_between(move.transferred_at, sao_created_at) <= policy.transfer_credit_days:
        return move.from_sdr_id
    return move.to_sdr_id
