from datetime import UTC, datetime, timedelta

from revops.router.domain.reps import Rep
from revops.router.domain.rules import RoutingPolicy
from revops.router.domain.transfers import TransferOutcome, sao_credit, transfer_account

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
REPS = {
    r.id: r
    for r in (
        Rep("005S1", "SDR"),
        Rep("005S2", "SDR"),
        Rep("005A1", "AE", paired_sdr_id="005S1"),
        Rep("005A2", "AE", paired_sdr_id="005S2"),
        Rep("005A3", "AE", paired_sdr_id="005S1"),
    )
}


def move(
    prev: str | None,
    new: str | None,
    leads: tuple[str, ...] = ("00Q2", "00Q1"),
    previous_sdr: str | None = None,
) -> TransferOutcome:
    return transfer_account("Acme", prev, new, REPS, list(leads), T0, previous_sdr)


def test_transfer_to_ae_with_other_sdr_notifies_both_and_moves_leads():
    out = move("005A1", "005A2")
    assert out.notify == ("005S1", "005S2")
    assert [(m.lead_id, m.from_sdr_id, m.to_sdr_id) for m in out.moves] == [
        ("00Q1", "005S1", "005S2"),
        ("00Q2", "005S1", "005S2"),
    ]
    assert "Acme" in out.message and "005S2" in out.message


def test_transfer_between_aes_sharing_their_sdr_notifies_nobody():
    out = move("005A1", "005A3")
    assert (out.notify, out.moves) == ((), ())


def test_new_unowned_account_picked_up_notifies_nobody():
    out = move(None, "005A2")
    assert (out.notify, out.moves, out.new_sdr_id) == ((), (), "005S2")


def test_sdr_kept_on_unowned_account_is_removed_when_an_ae_picks_it_up():
    out = move(None, "005A2", previous_sdr="005S1")
    assert out.notify == ("005S1", "005S2")


def test_account_left_without_ae_keeps_its_sdr():
    out = move("005A1", None)
    assert (out.notify, out.moves, out.new_sdr_id) == ((), (), "005S1")


def test_sao_credit_day_14_previous_sdr_day_15_new_sdr():
    m = move("005A1", "005A2").moves[0]
    policy = RoutingPolicy()
    assert sao_credit(m, T0 + timedelta(days=14, hours=14), policy) == "005S1"
    assert sao_credit(m, T0 + timedelta(days=15), policy) == "005S2"
    assert sao_credit(m, T0, policy) == "005S1"


def test_sao_credit_window_is_configurable():
    m = move("005A1", "005A2").moves[0]
    policy = RoutingPolicy(transfer_credit_days=7)
    assert sao_credit(m, T0 + timedelta(days=7), policy) == "005S1"
    assert sao_credit(m, T0 + timedelta(days=8), policy) == "005S2"
