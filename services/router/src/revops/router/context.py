"""What every part of the router shares, one per process: its settings, policy and region
map, the CRM write-back destinations, whether recorded decisions may be waiting to be
re-applied, and when the held-leads loop looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from revops.router.domain.regions import RegionMap
from revops.router.domain.rules import RoutingPolicy
from revops.router.settings import RouterSettings

HUBSPOT_OWNER = "hubspot_owner"
SALESFORCE_OWNER = "salesforce_owner"
CLOSED_LEAD_STATUSES = frozenset({"converted", "unqualified", "bad-data", "bad data"})


@dataclass
class Journal:
    """Whether ``recorded_routes``, ``recorded_conversions`` or ``recorded_transfers`` may
    hold decisions to re-apply. Rows only arrive there when an instance starts on an empty
    schema, before it consumes; an instance that found them empty after that step skips
    the look-ups for good."""

    may_have_records: bool = True


class HeldLeadsPace:
    """Who routes held leads, and when the held-leads loop looks again.

    While batches of new leads flow, each batch routes the held leads whose state is
    applied, with its own leads, in its own transaction: a held lead costs no transaction
    of its own. The loop is for the quiet moments: every ``poll`` while leads are held or
    this instance has just held some (its batch may not have committed yet), every
    ``idle`` otherwise (another instance may have stopped with leads held), and not at
    all while batches look for themselves: a batch's look less than ``batch_window`` ago
    stands for a pass (the loop's own transactions cost the router a few percent of its
    CPU while batches did the same work)."""

    def __init__(self, poll: float = 0.02, idle: float = 1.0, batch_window: float = 0.1) -> None:
        self.poll = poll
        self.idle = idle
        self.batch_window = batch_window
        self._expect_until = 0.0
        self._batch_looked_at = -batch_window
        self._some_held = True  # until a look finds none: another instance may hold some

    def expect(self) -> None:
        """This instance holds leads: look often for the next second."""
        self._expect_until = time.monotonic() + 1.0
        self._some_held = True

    def batch_should_look(self) -> bool:
        """Whether a batch of new leads should release held leads first."""
        return self._some_held or time.monotonic() < self._expect_until

    def batch_looked(self, some_held: bool) -> None:
        self._batch_looked_at = time.monotonic()
        self._some_held = some_held

    async def sleep(self, some_held: bool, stopping: asyncio.Event) -> None:
        """Until the loop's next pass, or until ``stopping`` is set. A batch that looked
        less than ``batch_window`` ago stands for a pass: the loop waits on."""
        self._some_held = some_held or time.monotonic() < self._expect_until
        delay = self.poll if self._some_held else self.idle
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            since_batch = time.monotonic() - self._batch_looked_at
            if stopping.is_set() or since_batch >= self.batch_window:
                return
            delay = self.batch_window - since_batch


@dataclass(frozen=True)
class RouterContext:
    settings: RouterSettings
    policy: RoutingPolicy
    region_map: RegionMap
    journal: Journal = field(default_factory=Journal)
    held_leads: HeldLeadsPace = field(default_factory=HeldLeadsPace)

    @classmethod
    def of(cls, settings: RouterSettings) -> RouterContext:
        return cls(settings, settings.policy(), settings.regions())

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def writeback_destinations(self) -> dict[str, str]:
        """Which CRM systems get the owner written back: system -> outbox destination."""
        out: dict[str, str] = {}
        if self.settings.hubspot_access_token is not None:
            out["hubspot"] = HUBSPOT_OWNER
        if self.settings.salesforce_configured:
            out["salesforce"] = SALESFORCE_OWNER
        return out
