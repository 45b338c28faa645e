"""Business time: the only place conveyor reads the wall clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Governs business time: record timestamps, consume lag, pause retry, timeouts, schedules.

    Leases, I/O polling and error backoff never use it: they run on real monotonic time.
    """

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Return once ``now() >= deadline`` (cancellable)."""
        ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        while True:
            delay = (deadline - self.now()).total_seconds()
            if delay <= 0:
                return
            # Re-check after waking: the wall clock can be stepped while we sleep.
            await asyncio.sleep(min(delay, 60.0))
