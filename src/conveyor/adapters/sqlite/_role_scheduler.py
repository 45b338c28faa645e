"""Roles as leases in the SQLite file: one holder per role across the machine's processes.

Each ``SQLiteRoleScheduler`` is a *member* with its own connection and a manager task
that runs rounds (``_leases.tick``): every ``poll_interval`` while it waits for or holds
a role, at once when a local ``hold`` starts or ends. A round heartbeats the member,
records the roles it wants, releases, renews and takes leases (see ``_leases`` for how
roles spread over members).

Exclusion. A lease row carries its expiry (``lease_ttl`` after the round that wrote
it); a take happens only inside a write transaction that finds the row absent,
released or expired. The holder renews every ``lease_ttl / 3`` and treats its lease as
lost at its own monotonic deadline, ``lease_ttl`` after the start of its last
successful round, which is never later than the expiry others see; or as soon as a
round finds the row held by someone else. Two holders therefore never overlap while
the machine's clocks run at the same rate.

Takeover time: a role whose holder died (SIGKILL, power loss of a process) is free
once its lease expires, at most ``lease_ttl`` after the holder's last round, and is
taken at the next round of the waiting member it is assigned to: normally within
``lease_ttl + poll_interval``; at most ``lease_ttl + grace + poll_interval`` if that
member is not waiting for it (then any member waiting for it takes it). A holder that
exits its block releases the role at once (deleted in its next round, which starts
immediately).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._errors import AdapterError
from ._db import Database
from ._leases import TickIn, TickOut, boot_id, tick

__all__ = ["SQLiteLease", "SQLiteRoleScheduler"]

# Schedulers of one file in this process: a release wakes the others at once.
_PEERS: dict[str, weakref.WeakSet[SQLiteRoleScheduler]] = {}


class SQLiteLease:
    """A held role; lost at the holder's deadline, on takeover, hand-over, or release."""

    __slots__ = ("_handle", "_lost", "role")

    def __init__(self, role: str) -> None:
        self.role: str = role
        self._lost = asyncio.Event()
        self._handle: asyncio.TimerHandle | None = None

    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def _arm(self, deadline: float) -> None:
        """Lose the lease at ``deadline`` (the loop's monotonic time) unless renewed."""
        if self._lost.is_set():
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = asyncio.get_running_loop().call_at(deadline, self._lose)

    def _lose(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._lost.set()


class SQLiteRoleScheduler:
    """``RoleScheduler`` on a SQLite file, for the processes of one machine.

    ``lease_ttl`` (seconds, default 5) bounds how long a dead holder keeps a role;
    ``poll_interval`` (default 0.2) is how often a waiting member looks; ``grace``
    (default ``4 * poll_interval``) how long a role must stay free before a member it
    is not assigned to takes it. ``hold`` waits cancellably; several
    ``hold`` calls for one role on one scheduler take turns in order. Open with
    ``await SQLiteRoleScheduler.open(path)`` (or build on a ``Database`` and call
    ``start``); ``close()`` releases everything.
    """

    def __init__(
        self,
        db: Database,
        *,
        lease_ttl: float = 5.0,
        poll_interval: float = 0.2,
        grace: float | None = None,
        owns_db: bool = False,
    ) -> None:
        if lease_ttl <= 0 or poll_interval <= 0:
            raise ValueError("lease_ttl and poll_interval must be positive")
        if poll_interval >= lease_ttl / 3:
            raise ValueError("poll_interval must be shorter than lease_ttl / 3")
        self._db = db
        self._owns_db = owns_db
        self._ttl = lease_ttl
        self._poll = poll_interval
        self._grace = 4 * poll_interval if grace is None else grace
        self.member_id: str = uuid.uuid4().hex
        self._clock = boot_id()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, asyncio.Future[SQLiteLease]] = {}
        self._held: dict[str, SQLiteLease] = {}
        self._releases: set[str] = set()
        self._free_since: dict[str, float] = {}
        self._last_write: float | None = None
        self._registered = False
        self._manager: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._woken = False
        self._closed = False
        self._peers_key = os.path.realpath(db.path)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        lease_ttl: float = 5.0,
        poll_interval: float = 0.2,
        grace: float | None = None,
        create_schema: bool = True,
        busy_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> SQLiteRoleScheduler:
        """A scheduler on ``path`` with its own connection (closed by ``close()``)."""
        db = Database(
            path,
            busy_timeout=lease_ttl / 5 if busy_timeout is None else busy_timeout,
            lock_timeout=lease_ttl / 2 if lock_timeout is None else lock_timeout,
            watch=False,
            inline=False,
            label="conveyor-sqlite-roles",
        )
        await db.open(create_schema=create_schema)
        scheduler = cls(
            db, lease_ttl=lease_ttl, poll_interval=poll_interval, grace=grace, owns_db=True
        )
        scheduler.start()
        return scheduler

    def start(self) -> None:
        """Start the manager task on the running loop (``hold`` does it if needed)."""
        if self._manager is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._manager = self._loop.create_task(self._manage(), name="conveyor-sqlite-roles")
        _PEERS.setdefault(self._peers_key, weakref.WeakSet()).add(self)

    async def close(self) -> None:
        """Lose every lease, delete this member's rows, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        manager = self._manager
        if manager is not None:
            manager.cancel()
            await asyncio.wait({manager})
        peers = _PEERS.get(self._peers_key)
        if peers is not None:
            peers.discard(self)
        for lease in self._held.values():
            lease._lose()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AdapterError("the SQLite role scheduler is closed"))
        self._waiting.clear()
        me = self.member_id

        def forget(conn: Any) -> None:
            conn.execute("DELETE FROM leases WHERE holder = ?", (me,))
            conn.execute("DELETE FROM wants WHERE member = ?", (me,))
            conn.execute("DELETE FROM members WHERE id = ?", (me,))

        try:
            if self._last_write is not None or self._held or self._releases:
                await self._db.write(forget)
                self._poke_peers()
        except AdapterError:
            pass  # the rows expire on their own
        finally:
            if self._owns_db:
                await self._db.close()

    def held_roles(self) -> list[str]:
        """Roles held right now (their leases not lost)."""
        return sorted(role for role, lease in self._held.items() if not lease.lost())

    # ------------------------------------------------------------------ hold

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[SQLiteLease]:
        if self._closed:
            raise AdapterError("the SQLite role scheduler is closed")
        self.start()
        lock = self._locks.get(role)
        if lock is None:
            lock = self._locks[role] = asyncio.Lock()
        async with lock:
            lease = await self._acquire(role)
            try:
                yield lease
            finally:
                self._release(lease)

    async def _acquire(self, role: str) -> SQLiteLease:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SQLiteLease] = loop.create_future()
        self._waiting[role] = future
        self._wake()
        try:
            return await future
        except BaseException:
            if self._waiting.get(role) is future:
                del self._waiting[role]
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(future.result())  # granted just as we were cancelled
            self._wake()
            raise

    def _release(self, lease: SQLiteLease) -> None:
        lease._lose()
        if self._held.get(lease.role) is lease:
            del self._held[lease.role]
            self._releases.add(lease.role)
            self._wake()

    # ------------------------------------------------------------------ the manager

    def _wake(self) -> None:
        self._woken = True
        future = self._wakeup
        if future is not None and not future.done():
            future.set_result(None)

    def _poke(self) -> None:
        loop = self._loop
        if loop is not None and not self._closed:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)

    def _poke_peers(self) -> None:
        for peer in list(_PEERS.get(self._peers_key, ())):
            if peer is not self:
                peer._poke()

    async def _sleep(self, delay: float | None) -> None:
        if self._woken:
            return
        loop = asyncio.get_running_loop()
        future = self._wakeup = loop.create_future()
        try:
            if delay is None:
                await future
            else:
                await asyncio.wait((future,), timeout=delay)
        finally:
            self._wakeup = None

    async def _manage(self) -> None:
        failures = 0
        while True:
            self._woken = False
            busy = bool(self._waiting or self._held or self._releases)
            if busy or self._registered:
                try:
                    await self._tick()
                    failures = 0
                except Exception:  # a failed round is retried; leases lapse at deadlines
                    failures += 1
                self._registered = busy
            if failures:
                delay: float | None = min(self._poll * 2**failures, self._ttl / 3)
            elif self._waiting or self._releases:
                delay = self._poll
            elif self._held:  # renew, and look for members waiting for a hand-over
                delay = min(self._ttl / 3, 2 * self._poll)
            else:
                delay = None
            await self._sleep(delay)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        renew = self._last_write is None or started - self._last_write >= self._ttl / 3
        releases = frozenset(self._releases)
        inp = TickIn(
            member=self.member_id,
            clock=self._clock,
            ttl=self._ttl,
            grace=self._grace,
            waiting=frozenset(r for r, f in self._waiting.items() if not f.done()),
            held=frozenset(self._held),
            lost=frozenset(r for r, lease in self._held.items() if lease.lost()),
            releases=releases,
            free_since=dict(self._free_since),
            renew=renew,
        )
        out: TickOut = await self._db.read(lambda conn: tick(conn, inp))
        self._apply(out, started, releases)

    def _apply(self, out: TickOut, started: float, releases: frozenset[str]) -> None:
        if out.wrote:
            self._last_write = started
            self._releases -= releases
            if releases:
                self._poke_peers()
        self._free_since = out.free_since
        deadline = started + self._ttl
        for role, lease in list(self._held.items()):
            if role not in out.owned:
                lease._lose()  # someone else holds it now
            elif out.wrote:
                lease._arm(deadline)
        for role in out.shed:
            handed = self._held.get(role)
            if handed is not None:
                handed._lose()  # handed over: the row goes when the block exits
        for role in out.taken:
            future = self._waiting.get(role)
            if future is None or future.done():
                self._releases.add(role)  # the waiter went away meanwhile
                self._woken = True
                continue
            del self._waiting[role]
            lease = SQLiteLease(role)
            lease._arm(deadline)
            self._held[role] = lease
            future.set_result(lease)
