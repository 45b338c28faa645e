"""A broadcast wake-up: every waiter at the time of ``fire()`` returns."""

from __future__ import annotations

import asyncio


class Signal:
    """Cheap edge-triggered notification for many waiters on one event loop."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    def fire(self) -> None:
        fut = self._future
        if fut is not None:
            self._future = None
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the next ``fire()`` (or ``timeout`` seconds; no error on timeout)."""
        fut = self._future
        if fut is None or fut.done():
            fut = self._future = asyncio.get_running_loop().create_future()
        if timeout is None:
            await asyncio.shield(fut)
            return
        # Not wait_for: on Python 3.11 it swallows a cancellation that arrives just as
        # the future completes, and a relay cancelled by stop() would then never end.
        await asyncio.wait((fut,), timeout=timeout)
