"""Gemstone tiers of accounts, and when a move between them opens an onboarding.

The handbook (seeds/003, "Gemstone Automations") numbers nothing explicitly; it lists
the tiers in the order it tests them, diamond first, and says "when an account moved
from Gemstone 5 or 6 to Gemstone 1-4 a new onboarding object is created". Our reading:
the tiers are numbered in that order (1 diamond, 2 pearl, 3 sapphire, 4 ruby, 5
quartz) and "6" is an account without a gemstone yet (no users, plan or iACV known).
So an onboarding opens when an account untiered or in quartz moves into ruby or above,
e.g. its first purchase. Both sets are configuration (``TierPolicy``): the other
reading, quartz/ruby into sapphire and above, is one setting away.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from revops.renewals.domain.stages import squash


class Tier(StrEnum):
    DIAMOND = "diamond"
    PEARL = "pearl"
    SAPPHIRE = "sapphire"
    RUBY = "ruby"
    QUARTZ = "quartz"

    @property
    def number(self) -> int:
        """The handbook's gemstone number: 1 diamond .. 5 quartz (6: no tier yet)."""
        return list(Tier).index(self) + 1


@dataclass(frozen=True)
class TierThreshold:
    """Above ``users``, or Ultimate and above ``ultimate_users``, or above ``iacv``."""

    tier: Tier
    users: int
    iacv: Decimal
    ultimate_users: int | None = None


DEFAULT_THRESHOLDS: tuple[TierThreshold, ...] = (
    TierThreshold(Tier.DIAMOND, 5000, Decimal(500_000), ultimate_users=2000),
    TierThreshold(Tier.PEARL, 2500, Decimal(250_000), ultimate_users=1000),
    TierThreshold(Tier.SAPPHIRE, 1000, Decimal(100_000)),
    TierThreshold(Tier.RUBY, 500, Decimal(50_000)),
)


@dataclass(frozen=True)
class TierPolicy:
    thresholds: tuple[TierThreshold, ...] = DEFAULT_THRESHOLDS
    ultimate_plan: str = "Ultimate"
    # None stands for "no tier yet" (the handbook's gemstone 6).
    onboarding_from: frozenset[Tier | None] = frozenset({Tier.QUARTZ, None})
    onboarding_into: frozenset[Tier] = frozenset(
        {Tier.RUBY, Tier.SAPPHIRE, Tier.PEARL, Tier.DIAMOND}
    )


@dataclass(frozen=True)
class AccountSize:
    users: int | None = None
    plan: str | None = None
    iacv: Decimal | None = None

    @property
    def known(self) -> bool:
        return self.users is not None or self.plan is not None or self.iacv is not None


def gemstone(size: AccountSize, policy: TierPolicy = TierPolicy()) -> Tier:
    """The first tier whose test the account passes; strictly above each limit."""
    users = size.users or 0
    iacv = size.iacv or Decimal(0)
    ultimate = size.plan is not None and squash(policy.ultimate_plan) in squash(size.plan)
    for threshold in policy.thresholds:
        if users > threshold.users or iacv > threshold.iacv:
            return threshold.tier
        if ultimate and threshold.ultimate_users is not None and users > threshold.ultimate_users:
            return threshold.tier
    return Tier.QUARTZ


def tier_of(size: AccountSize, policy: TierPolicy = TierPolicy()) -> Tier | None:
    """The account's tier, or None while nothing about its size is known."""
    return gemstone(size, policy) if size.known else None


def opens_onboarding(before: Tier | None, after: Tier | None, policy: TierPolicy) -> bool:
    return (
        after is not None and before in policy.onboarding_from and (after in policy.onboarding_into)
    )
