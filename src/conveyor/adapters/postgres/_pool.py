"""The pool of PostgreSQL connections: the SQL adapters' ``Pool`` with asyncpg's calls.

asyncpg's own pool resets every connection it gets back, and wraps each in a proxy
behind timeouts; per statement that cost more client CPU (about 40 µs) than the rest of
the adapter's bookkeeping, which matters when the database shares the cores.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from ..._kit._pool import Driver
from ..._kit._pool import Pool as _Pool

__all__ = ["Pool"]

if TYPE_CHECKING:  # the driver's classes are generic only in its type stubs
    _Conn: TypeAlias = asyncpg.Connection[Any]
else:
    _Conn = asyncpg.Connection


async def _close(conn: _Conn) -> None:
    await conn.close()


class Pool(_Pool[_Conn]):
    """At most ``max_size`` connections made by ``connect``; ``acquire``/``release``."""

    def __init__(self, connect: Callable[[], Awaitable[_Conn]], max_size: int) -> None:
        driver = Driver(
            name="PostgreSQL",
            connect=connect,
            is_open=lambda c: not c.is_closed(),
            is_clean=lambda c: not c.is_in_transaction(),
            terminate=lambda c: c.terminate(),
            close=_close,
        )
        super().__init__(driver, max_size)
