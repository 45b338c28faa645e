"""Roles for the instances of one process: a fair lock per role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["MemoryLease", "MemoryRoleScheduler"]


class MemoryLease:
    """A held role; lost only when ``MemoryRoleScheduler.revoke`` is called."""

    __slots__ = ("_lost", "_released", "role")

    def __init__(self, role: str) -> None:
        self.role: str = role
        self._lost = asyncio.Event()
        self._released = False

    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()


class MemoryRoleScheduler:
    """``RoleScheduler`` for workflows sharing one event loop.

    Each role is a FIFO lock: waiters get the role in the order they asked, so several
    workflow instances on one scheduler take turns. Waiting is cancellable.
    ``revoke(role)`` simulates a lost lease: the holder is told and the role is handed
    on at once (as when a remote lease expires), so tests can exercise role loss.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, MemoryLease] = {}

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MemoryLease]:
        lock = self._locks.get(role)
        if lock is None:
            lock = self._locks[role] = asyncio.Lock()
        await lock.acquire()
        lease = MemoryLease(role)
        self._holders[role] = lease
        try:
            yield lease
        finally:
            self._release(lease)

    def _release(self, lease: MemoryLease) -> None:
        lease._lost.set()
        if lease._released:
            return
        lease._released = True
        if self._holders.get(lease.role) is lease:
            del self._holders[lease.role]
        self._locks[lease.role].release()

    def holder(self, role: str) -> MemoryLease | None:
        """The lease currently holding ``role``, if any."""
        return self._holders.get(role)

    def held_roles(self) -> list[str]:
        """Every role held right now."""
        return sorted(self._holders)

    def revoke(self, role: str) -> bool:
        """Take ``role`` away from its holder; returns whether anyone held it."""
        lease = self._holders.get(role)
        if lease is None:
            return False
        self._release(lease)
        return True

    async def close(self) -> None:
        """Nothing to release: memory adapters hold no connections. Idempotent."""
