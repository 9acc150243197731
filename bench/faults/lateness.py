"""How late the fault check's event loop wakes up. The load generator shares the loop
with the fault injection and the lag reads: a request scheduled while the loop is held up
is sent that much late, and its latency (from the scheduled time) counts the delay."""

from __future__ import annotations

import asyncio
import time
from typing import Any


class LoopLateness:
    """Every wake-up more than 0.1 s late, from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self.late: list[tuple[float, float]] = []  # (wall time, seconds late)
        self.started = time.time()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls) -> LoopLateness:
        watch = cls()
        watch._task = asyncio.create_task(watch._watch())
        return watch

    async def _watch(self) -> None:
        while not self._stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.05)
            behind = time.perf_counter() - before - 0.05
            if behind > 0.1:
                self.late.append((time.time(), round(behind, 3)))

    async def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return {
            "wake_ups_over_0.1s": len(self.late),
            "max_s": max((s for _, s in self.late), default=0.0),
            "seconds_after_start": [(round(t - self.started, 1), s) for t, s in self.late][:200],
        }
