"""A small connection pool: idle connections on a stack, waiters in a queue.

asyncpg's own pool resets every connection it gets back, and wraps each in a proxy
behind timeouts; per statement that cost more client CPU (about 40 µs) than the rest of
the adapter's bookkeeping, which matters when the database shares the cores. This pool
keeps no session state to reset: a connection comes back either clean (the work ended
with no transaction open) or it is terminated (cancelled or failed mid-statement) and
its slot freed for a new one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ..._errors import AdapterError, AdapterUnavailable

__all__ = ["Pool"]


class Pool:
    """At most ``max_size`` connections made by ``connect``; ``acquire``/``release``."""

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection[Any]]], max_size: int
    ) -> None:
        self._connect = connect
        self._max = max(1, max_size)
        self._idle: list[asyncpg.Connection[Any]] = []
        self._size = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[asyncpg.Connection[Any] | None]] = deque()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def fill(self, count: int) -> None:
        """Open connections until ``count`` are idle (raises if the first cannot be made)."""
        while self._size < min(count, self._max):
            self._size += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._size -= 1
                raise
            self._idle.append(conn)

    async def acquire(self, timeout: float) -> asyncpg.Connection[Any]:
        """A connection for one unit of work (raises ``AdapterUnavailable`` after ``timeout``
        seconds without one)."""
        while True:
            if self._closed:
                raise AdapterError("PostgreSQL backend is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._size -= 1  # the server closed it while idle (restart, terminate)
            if self._size < self._max:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake_one(None)
                    raise
            fut: asyncio.Future[asyncpg.Connection[Any] | None]
            fut = asyncio.get_running_loop().create_future()
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
                        f"no PostgreSQL connection free within {timeout}s (pool of {self._max})"
                    ) from None
                raise
            if conn_or_slot is not None:
                return conn_or_slot
            # A slot was freed: loop to open a connection in it.

    def release(self, conn: asyncpg.Connection[Any], *, broken: bool = False) -> None:
        """Give a connection back; a broken one (or one left in a transaction) is closed."""
        if broken or conn.is_closed() or conn.is_in_transaction() or self._closed:
            conn.terminate()
            self._size -= 1
            self._wake_one(None)
            return
        if not self._wake_one(conn):
            self._idle.append(conn)

    def drop_idle(self) -> None:
        """Close every idle connection (new ones are made as needed)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()
            self._size -= 1
            self._wake_one(None)

    def _wake_one(self, conn: asyncpg.Connection[Any] | None) -> bool:
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
                fut.set_exception(AdapterError("PostgreSQL backend is closed"))
        idle, self._idle = self._idle, []
        for conn in idle:
            self._size -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout)
            except Exception:
                conn.terminate()
