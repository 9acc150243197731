"""Which rep changes may unblock leads waiting for someone eligible in their region."""

import pytest

from revops.router.domain.eligibility import may_take_more, regions_gaining_reps
from revops.router.domain.reps import Rep

READY = Rep("s1", "SDR", "AMER", certified=True)


def test_a_new_eligible_sdr_may_take_leads():
    assert may_take_more(None, READY)


def test_a_new_sdr_who_may_not_take_turns_does_not():
    assert not may_take_more(None, Rep("s1", "SDR", "AMER", certified=False))
    assert not may_take_more(None, Rep("s1", "SDR", None, certified=True))
    assert not may_take_more(None, Rep("a1", "AE", "AMER", certified=True))


@pytest.mark.parametrize(
    "was",
    [
        Rep("s1", "SDR", "AMER", certified=True, paused=True),
        Rep("s1", "SDR", "AMER", certified=False),
        Rep("s1", "SDR", "AMER", certified=True, out_of_office=True),
        Rep("s1", "SDR", "AMER", certified=True, active=False),
        Rep("s1", "SDR", "AMER", certified=True, weight=0),
        Rep("s1", "SDR", "EMEA", certified=True),
        Rep("s1", "AE", "AMER", certified=True),
        Rep("s1", "SDR", "AMER", certified=True, consultant=True),
    ],
)
def test_becoming_eligible_counts(was):
    assert may_take_more(was, READY)


def test_a_change_that_keeps_an_eligible_rep_eligible_does_not():
    assert not may_take_more(READY, Rep("s1", "SDR", "AMER", certified=True, name="Sue"))
    assert not may_take_more(READY, Rep("s1", "SDR", "AMER", certified=True, weight=3))


def test_a_cap_raised_or_lifted_counts_a_cap_lowered_does_not():
    capped = Rep("s1", "SDR", "AMER", certified=True, daily_cap=5)
    assert not may_take_more(capped, capped)
    assert may_take_more(capped, Rep("s1", "SDR", "AMER", certified=True, daily_cap=6))
    assert may_take_more(capped, READY)
    assert not may_take_more(capped, Rep("s1", "SDR", "AMER", certified=True, daily_cap=4))
    assert not may_take_more(READY, capped)


def test_becoming_unavailable_does_not():
    assert not may_take_more(READY, Rep("s1", "SDR", "AMER", certified=True, paused=True))


def test_regions_gaining_reps_names_the_reps_by_region():
    before = {"s1": Rep("s1", "SDR", "AMER", certified=True, paused=True), "s2": READY}
    after = {
        "s1": Rep("s1", "SDR", "AMER", certified=True),
        "s2": Rep("s2", "SDR", "AMER", certified=True),
        "s3": Rep("s3", "SDR", "EMEA", certified=True),
        "s4": Rep("s4", "SDR", "APAC", certified=False),
    }
    assert regions_gaining_reps(before, after) == {"AMER": ["s1"], "EMEA": ["s3"]}
