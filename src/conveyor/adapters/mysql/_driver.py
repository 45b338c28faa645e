"""What the adapters use of asyncmy's connections and cursors, as typed Protocols.

asyncmy ships stubs whose classes pyright sees as partly unknown; these Protocols are what
conveyor relies on (and all it may call), so the adapters' public types are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol

__all__ = ["Connection", "Cursor"]


class Cursor(Protocol):
    """A cursor: one statement at a time, its rows fetched after it."""

    @property
    def lastrowid(self) -> int: ...

    async def execute(self, query: str, args: Sequence[object] | None = None) -> int:
        """Run ``query`` with ``%s`` parameters; the rows it changed (or found)."""
        ...

    async def fetchone(self) -> Any:  # Any: a row of driver-decoded values, or None
        ...

    async def fetchall(self) -> Sequence[Any]:  # Any: rows of driver-decoded values
        ...

    async def __aenter__(self) -> Cursor: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Connection(Protocol):
    """One session with the server."""

    @property
    def connected(self) -> bool: ...

    def cursor(self) -> Cursor: ...

    def get_transaction_status(self) -> bool:
        """True while a transaction is open on it."""
        ...

    async def rollback(self) -> None: ...

    def close(self) -> None:
        """Close the socket at once (no goodbye to the server)."""
        ...

    async def ensure_closed(self) -> None:
        """Say goodbye to the server, then close."""
        ...

    def thread_id(self) -> int:
        """The server's ID of this session (``KILL <id>`` ends it)."""
        ...
