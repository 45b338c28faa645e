"""``DeadlineLease``: a held role that counts as lost at a deadline unless renewed."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

__all__ = ["DeadlineLease"]


class DeadlineLease:
    """A ``Lease`` whose holder must stop at ``deadline`` (monotonic) unless its scheduler
    renewed it before (``_extend``). A timer fires at the deadline, so ``wait_lost``
    returns then even when nobody asks ``lost()``; ``_lose`` ends it at once, with a
    ``reason``. Role schedulers subclass it to add what they fence with (an epoch, a
    revision)."""

    __slots__ = ("_handle", "_lost", "deadline", "reason", "role")

    EXPIRED: ClassVar[str] = "lease expired"
    """The ``reason`` of a lease that reached its deadline."""

    def __init__(self, role: str, deadline: float) -> None:
        self.role: str = role
        self.deadline: float = deadline
        """Monotonic time at which the lease counts as lost unless renewed before."""
        self.reason: str = ""
        """Why the lease was lost (empty while held)."""
        self._lost = asyncio.Event()
        self._handle: asyncio.TimerHandle | None = None
        self._arm()

    def lost(self) -> bool:
        """True once the holder must stop working under the role."""
        if not self._lost.is_set() and time.monotonic() >= self.deadline:
            self._lose(self.EXPIRED)
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        """Return when the role is lost (or the lease released)."""
        await self._lost.wait()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        delay = max(0.0, self.deadline - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self.lost)

    def _extend(self, deadline: float) -> None:
        """A renewal got through: the lease holds until ``deadline`` (never earlier)."""
        if deadline > self.deadline and not self._lost.is_set():
            self.deadline = deadline
            self._arm()

    def _lose(self, reason: str) -> None:
        """The lease ends now (released, taken over, handed over, stopped)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._lost.is_set():
            self.reason = reason
            self._lost.set()
