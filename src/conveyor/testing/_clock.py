"""A clock that moves only when a test moves it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """Business time for tests: ``set`` and ``advance`` wake everything now due.

    Leases, polling and error backoff do not use the clock, so advancing it by an hour
    fires timeouts, consume lags and pause retries without expiring anything else.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or _DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._now = start
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards) and wake every sleeper now due."""
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware datetime")
        if when < self._now:
            raise ValueError(f"FakeClock cannot go back from {self._now} to {when}")
        self._now = when
        while self._waiters and self._waiters[0][0] <= when:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    def advance(self, delta: float | timedelta) -> datetime:
        """Move forward by ``delta`` (seconds or a timedelta); returns the new time."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self.set(self._now + delta)
        return self._now

    async def sleep_until(self, deadline: datetime) -> None:
        if deadline <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (deadline, next(self._seq), fut))
        await fut

    def sleepers(self) -> int:
        """How many tasks are waiting for the clock to move."""
        return sum(1 for _, _, f in self._waiters if not f.done())

    def next_deadline(self) -> datetime | None:
        """The earliest time a sleeper waits for, if any."""
        live = [d for d, _, f in self._waiters if not f.done()]
        return min(live) if live else None
