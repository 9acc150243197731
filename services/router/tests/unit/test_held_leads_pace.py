"""The held-leads loop stands aside while batches of new leads release held leads."""

import asyncio
import time

from revops.router.context import HeldLeadsPace


async def test_a_pass_waits_while_batches_look_and_comes_once_they_stop() -> None:
    pace = HeldLeadsPace(poll=0.01, idle=5.0, batch_window=1.0)
    stopping = asyncio.Event()
    pace.batch_looked(some_held=True)
    sleeping = asyncio.ensure_future(pace.sleep(some_held=True, stopping=stopping))
    looked_until = time.monotonic() + 0.3
    while time.monotonic() < looked_until:  # batches look every 10 ms for 0.3 s
        pace.batch_looked(some_held=True)
        await asyncio.sleep(0.01)
        assert not sleeping.done(), "a pass came while batches were looking"
    last_look = time.monotonic()
    await asyncio.wait_for(sleeping, 5.0)
    # The pass comes a batch window after the last look, not a poll after the first.
    assert time.monotonic() - last_look >= 0.9


async def test_with_no_batch_looking_a_pass_comes_after_the_poll() -> None:
    pace = HeldLeadsPace(poll=0.01, idle=5.0, batch_window=1.0)
    started = time.monotonic()
    await asyncio.wait_for(pace.sleep(some_held=True, stopping=asyncio.Event()), 5.0)
    assert time.monotonic() - started < 0.9  # the poll, not the batch window


async def test_stopping_ends_the_wait_at_once() -> None:
    pace = HeldLeadsPace(poll=0.01, idle=5.0, batch_window=1.0)
    stopping = asyncio.Event()
    pace.batch_looked(some_held=True)
    sleeping = asyncio.ensure_future(pace.sleep(some_held=True, stopping=stopping))
    await asyncio.sleep(0)
    stopping.set()
    await asyncio.wait_for(sleeping, 5.0)
