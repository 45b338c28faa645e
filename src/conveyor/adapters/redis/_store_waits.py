"""``Waiters``: blocking stream reads (``XREAD BLOCK``) for the stores' wake-ups.

A wait holds a connection of its own while it blocks (``BlockingConnection``), taken from
a small pool of idle ones and given back after; a wait longer than ``read_block`` is cut
into reads of at most that long (each connection's socket timeout is set for it).
"""

from __future__ import annotations

import time
from typing import Any

from ._client import BlockingConnection, RedisClient

__all__ = ["Waiters"]

_IDLE = 4
"""Idle blocking connections kept for later waits (more are closed when given back)."""


class Waiters:
    """Blocking ``XREAD``s on connections of their own (see the module docstring)."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._idle: list[BlockingConnection] = []
        self._closed = False

    async def read(self, what: str, key: str, after: str | bytes, timeout: float) -> bool:
        """Wait until stream ``key`` has an entry after ``after`` (``"0"``: any entry), at
        most ``timeout`` seconds; whether one came."""
        block = self._client.options.read_block
        deadline = time.monotonic() + max(0.0, timeout)
        conn = self._idle.pop() if self._idle else self._client.blocking(block)
        try:
            while True:
                remaining = deadline - time.monotonic()
                ms = max(1, int(min(remaining, block) * 1000))
                reply: Any = await conn.command(
                    what, "XREAD", "COUNT", 1, "BLOCK", ms, "STREAMS", key, after
                )
                if reply:
                    return True
                if deadline - time.monotonic() <= 0:
                    return False
        finally:
            if self._closed or len(self._idle) >= _IDLE:
                await conn.close()
            else:
                self._idle.append(conn)

    async def close(self) -> None:
        """Close the idle connections (a wait under way closes its own). Idempotent."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
