"""A small connection pool for the SQL adapters: idle connections on a stack, waiters in a
queue, and no session state to reset.

A connection comes back either clean (its work ended with no transaction open) or it is
closed (its statement was cancelled or failed in transit) and its slot freed for a new
one: a connection whose query was cancelled is never reused. What "open", "clean" and
"close" mean is the driver's business, given by a ``Driver``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .._errors import AdapterError, AdapterUnavailable

__all__ = ["Driver", "Pool"]

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Driver(Generic[C]):
    """How the pool makes, checks and ends one driver's connections."""

    name: str
    """The server's name in messages (``PostgreSQL``, ``MySQL``)."""
    connect: Callable[[], Awaitable[C]]
    is_open: Callable[[C], bool]
    """False once the server or the driver closed it."""
    is_clean: Callable[[C], bool]
    """True when no transaction is left open on it."""
    terminate: Callable[[C], None]
    """Close at once, without a goodbye to the server (a broken or cancelled one)."""
    close: Callable[[C], Awaitable[None]]
    """Close politely (at shutdown)."""


class Pool(Generic[C]):
    """At most ``max_size`` connections made by ``driver``; ``acquire``/``release``."""

    def __init__(self, driver: Driver[C], max_size: int) -> None:
        self._driver = driver
        self._max = max(1, max_size)
        self._idle: list[C] = []
        self._size = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[C | None]] = deque()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def fill(self, count: int) -> None:
        """Open connections until ``count`` are idle (raises if the first cannot be made)."""
        while self._size < min(count, self._max):
            self._size += 1
            try:
                conn = await self._driver.connect()
            except BaseException:
                self._size -= 1
                raise
            self._idle.append(conn)

    async def acquire(self, timeout: float) -> C:
        """A connection for one unit of work (raises ``AdapterUnavailable`` after ``timeout``
        seconds without one)."""
        driver = self._driver
        while True:
            if self._closed:
                raise AdapterError(f"{driver.name} backend is closed")
            while self._idle:
                conn = self._idle.pop()
                if driver.is_open(conn):
                    return conn
                self._size -= 1  # the server closed it while idle (restart, kill)
            if self._size < self._max:
                self._size += 1
                try:
                    return await driver.connect()
                except BaseException:
                    self._size -= 1
                    self._wake_one(None)
                    raise
            fut: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                async with asyncio.timeout(timeout):
                    conn_or_slot = await fut
            except BaseException as exc:
                if fut.done() and not fut.cancelled():
                    handed = fut.result()
                    if handed is not None:
                        self.release(handed)  # given to us as we gave up: pass it on
                    else:
                        self._wake_one(None)
                else:
                    fut.cancel()
                if isinstance(exc, TimeoutError):
                    raise AdapterUnavailable(
                        f"no {driver.name} connection free within {timeout}s (pool of {self._max})"
                    ) from None
                raise
            if conn_or_slot is not None:
                return conn_or_slot
            # A slot was freed: loop to open a connection in it.

    def release(self, conn: C, *, broken: bool = False) -> None:
        """Give a connection back; a broken one (or one left in a transaction) is closed."""
        driver = self._driver
        if broken or self._closed or not driver.is_open(conn) or not driver.is_clean(conn):
            driver.terminate(conn)
            self._size -= 1
            self._wake_one(None)
            return
        if not self._wake_one(conn):
            self._idle.append(conn)

    def drop_idle(self) -> None:
        """Close every idle connection (new ones are made as needed)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            self._driver.terminate(conn)
            self._size -= 1
            self._wake_one(None)

    def _wake_one(self, conn: C | None) -> bool:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return True
        return False

    async def close(self, timeout: float = 5.0) -> None:
        """Close idle connections and refuse new work (connections in use are closed when
        they come back)."""
        self._closed = True
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(AdapterError(f"{self._driver.name} backend is closed"))
        idle, self._idle = self._idle, []
        for conn in idle:
            self._size -= 1
            try:
                await asyncio.wait_for(self._driver.close(conn), timeout)
            except Exception:
                self._driver.terminate(conn)
