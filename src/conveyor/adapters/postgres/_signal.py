"""A broadcast wake-up with a generation count, so a waiter cannot miss a fire that happened
between its last look at the database and the start of its wait."""

from __future__ import annotations

import asyncio

__all__ = ["Signal"]


class Signal:
    """Edge-triggered notification for many waiters on one event loop."""

    __slots__ = ("_future", "generation")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self.generation = 0

    def fire(self) -> None:
        self.generation += 1
        fut = self._future
        if fut is not None:
            self._future = None
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None, since: int | None = None) -> None:
        """Wait for the next ``fire()`` or ``timeout`` seconds (no error on timeout).

        With ``since`` (a ``generation`` read before looking at the database), returns at
        once if a fire happened after that read.
        """
        if since is not None and since != self.generation:
            return
        fut = self._future
        if fut is None or fut.done():
            fut = self._future = asyncio.get_running_loop().create_future()
        # Not wait_for: on Python 3.11 it can swallow a cancellation that arrives just as
        # the future completes. asyncio.wait never cancels the shared future.
        await asyncio.wait((fut,), timeout=timeout)
