"""The account list's tier filter names every tier there is, and `none`."""

from __future__ import annotations

from typing import get_args

from revops.renewals.domain.tiers import Tier
from revops.renewals.lists_api import AccountTier


def test_the_tier_filter_offers_every_tier_and_none() -> None:
    assert set(get_args(AccountTier)) == {tier.value for tier in Tier} | {"none"}
