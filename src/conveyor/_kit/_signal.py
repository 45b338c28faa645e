"""``Signal``: a broadcast wake-up for many waiters on one event loop.

Every waiter at the time of ``fire()`` returns. ``generation`` counts the fires, so a
waiter that looked at its source (a table, a log) and then waits can pass the generation
it read before looking: if a fire happened in between, the wait returns at once and the
wake-up is not lost.
"""

from __future__ import annotations

import asyncio

__all__ = ["Signal"]


class Signal:
    """Edge-triggered notification for many waiters on one event loop; not thread-safe."""

    __slots__ = ("_future", "generation")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self.generation: int = 0
        """How many times ``fire()`` was called."""

    def fire(self) -> None:
        """Wake every current waiter (a fire with no waiter only counts a generation)."""
        self.generation += 1
        fut = self._future
        if fut is not None:
            self._future = None
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None = None, since: int | None = None) -> None:
        """Wait for the next ``fire()``, or ``timeout`` seconds (no error on timeout).

        With ``since`` (a ``generation`` read before looking at the source), returns at
        once if a fire happened after that read. Cancellable; a cancelled waiter does not
        disturb the others.
        """
        if since is not None and since != self.generation:
            return
        fut = self._future
        if fut is None or fut.done():
            fut = self._future = asyncio.get_running_loop().create_future()
        # Not wait_for: on Python 3.11 it can swallow a cancellation that arrives just as
        # the future completes (a loop cancelled by stop() would then never end), and
        # asyncio.wait never cancels the shared future.
        await asyncio.wait((fut,), timeout=timeout)
