"""Wake-ups for waiters on one event loop: local writes at once, other processes' by polling.

Keys name what changed: ``("events", topic)``, ``("outbox", workflow)``,
``("timeouts", workflow)``. A write made through this process's connection fires its
key as soon as it commits. Writes by other connections (other processes) are found by
the connection's thread (``PRAGMA data_version``, then the rows newer than the last
seen ids) and posted to ``remote``, which fires only the keys this process has not
already announced itself.

Each key carries a version that every ``fire`` bumps. A waiter reads the version
before it looks at the database and passes it to ``wait``, which returns at once if
the key fired in between: no wake-up is lost between a look and a wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["Hub", "Key"]

Key = tuple[str, str]


class Hub:
    """Per-key versions and broadcast wake-ups, on the loop the database was opened on."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._versions: dict[Key, int] = {}
        self._futures: dict[Key, asyncio.Future[None]] = {}
        self._local_last: dict[Key, int] = {}
        self._known_last: dict[Key, int] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop that waits (called by ``Database.open``)."""
        self._loop = loop

    def version(self, key: Key) -> int:
        """How often ``key`` fired so far: pass it to ``wait`` after looking."""
        return self._versions.get(key, 0)

    def fire(self, key: Key) -> None:
        """Wake every waiter of ``key`` (loop thread only)."""
        self._versions[key] = self._versions.get(key, 0) + 1
        future = self._futures.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)

    def local(self, key: Key, last_id: int) -> None:
        """This process committed rows of ``key`` up to ``last_id``: wake its waiters."""
        if last_id > self._local_last.get(key, 0):
            self._local_last[key] = last_id
        self.saw(key, last_id)
        self.fire(key)

    def remote(self, changes: Iterable[tuple[Key, int]]) -> None:
        """Other connections committed rows of these keys, up to the given ids."""
        for key, last_id in changes:
            self.saw(key, last_id)
            if last_id > self._local_last.get(key, 0):
                self.fire(key)

    def saw(self, key: Key, last_id: int) -> None:
        """Rows of ``key`` exist up to ``last_id`` (without waking anyone)."""
        if last_id > self._known_last.get(key, 0):
            self._known_last[key] = last_id

    def known_last(self, key: Key) -> int:
        """The highest id of ``key`` this process has heard of."""
        return self._known_last.get(key, 0)

    async def wait(
        self,
        key: Key,
        since: int,
        timeout: float | None,
        also: asyncio.Future[None] | None = None,
    ) -> None:
        """Return once ``key`` fired after version ``since`` (at once if it already did),
        ``also`` is done, or ``timeout`` seconds passed. Cancellable; never raises on
        timeout."""
        if self._versions.get(key, 0) != since or (also is not None and also.done()):
            return
        future = self._futures.get(key)
        if future is None or future.done():
            loop = self._loop or asyncio.get_running_loop()
            future = self._futures[key] = loop.create_future()
        if timeout is not None and timeout <= 0:
            return
        # Not wait_for: on 3.11 it can swallow a cancellation that races with completion.
        # (asyncio.wait never cancels the shared future when this waiter is cancelled.)
        waits = (future,) if also is None else (future, also)
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
