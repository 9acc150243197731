from decimal import Decimal

import pytest

from revops.renewals.domain.tiers import (
    AccountSize,
    Tier,
    TierPolicy,
    gemstone,
    opens_onboarding,
    tier_of,
)

POLICY = TierPolicy()


@pytest.mark.parametrize(
    ("users", "plan", "iacv", "tier"),
    [
        (5001, None, None, Tier.DIAMOND),
        (5000, None, None, Tier.PEARL),
        (2001, "Ultimate", None, Tier.DIAMOND),
        (2000, "Ultimate", None, Tier.PEARL),
        (2001, "Premium", None, Tier.SAPPHIRE),
        (None, None, Decimal("500000.01"), Tier.DIAMOND),
        (None, None, Decimal(500_000), Tier.PEARL),
        (2501, None, None, Tier.PEARL),
        (2500, None, None, Tier.SAPPHIRE),
        (1001, "ultimate", None, Tier.PEARL),
        (1000, "Ultimate", None, Tier.RUBY),
        (None, None, Decimal(250_001), Tier.PEARL),
        (None, None, Decimal(250_000), Tier.SAPPHIRE),
        (1001, None, None, Tier.SAPPHIRE),
        (1000, None, None, Tier.RUBY),
        (None, None, Decimal(100_001), Tier.SAPPHIRE),
        (None, None, Decimal(100_000), Tier.RUBY),
        (501, None, None, Tier.RUBY),
        (500, None, None, Tier.QUARTZ),
        (None, None, Decimal(50_001), Tier.RUBY),
        (None, None, Decimal(50_000), Tier.QUARTZ),
        (0, None, Decimal(0), Tier.QUARTZ),
        (501, "Ultimate", None, Tier.RUBY),
    ],
)
def test_gemstone_boundaries(users, plan, iacv, tier):
    assert gemstone(AccountSize(users, plan, iacv), POLICY) is tier


def test_first_match_wins():
    # 600 users alone is ruby, but 300k iACV makes it pearl.
    assert gemstone(AccountSize(600, None, Decimal(300_000))) is Tier.PEARL


def test_unknown_size_has_no_tier_yet():
    assert tier_of(AccountSize()) is None
    assert tier_of(AccountSize(users=10)) is Tier.QUARTZ


def test_numbers_follow_the_handbook_order():
    assert [t.number for t in Tier] == [1, 2, 3, 4, 5]
    assert Tier.DIAMOND.number == 1 and Tier.QUARTZ.number == 5


@pytest.mark.parametrize(
    ("before", "after", "opens"),
    [
        (Tier.QUARTZ, Tier.RUBY, True),
        (Tier.QUARTZ, Tier.DIAMOND, True),
        (None, Tier.SAPPHIRE, True),  # gemstone 6 (no tier yet) into 1-4
        (None, Tier.QUARTZ, False),
        (Tier.RUBY, Tier.SAPPHIRE, False),  # already in 1-4
        (Tier.PEARL, Tier.DIAMOND, False),
        (Tier.DIAMOND, Tier.QUARTZ, False),  # moving down never opens one
        (Tier.QUARTZ, Tier.QUARTZ, False),
        (Tier.QUARTZ, None, False),
    ],
)
def test_onboarding_opens_moving_from_5_or_6_into_1_to_4(before, after, opens):
    assert opens_onboarding(before, after, POLICY) is opens


def test_the_other_reading_is_configuration():
    policy = TierPolicy(
        onboarding_from=frozenset({Tier.QUARTZ, Tier.RUBY, None}),
        onboarding_into=frozenset({Tier.SAPPHIRE, Tier.PEARL, Tier.DIAMOND}),
    )
    assert opens_onboarding(Tier.RUBY, Tier.SAPPHIRE, policy)
    assert not opens_onboarding(Tier.QUARTZ, Tier.RUBY, policy)
