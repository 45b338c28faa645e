"""``CursorFlusher``: receivers' cursor positions, written in batches in the background.

A receiver's ``ack`` should be cheap, so it only *marks* the new position of its cursor
(per topic and receiver name); the flusher writes every marked position soon after, all
in one call of the adapter's ``write`` callback (one statement or transaction), and
again after a failure, with backoff, until it succeeds. ``flush()`` writes now (a
receiver that closes, a reader that must see the latest positions), ``close()`` writes
what is left. A crash loses at most the positions marked since the last write: their
events are delivered again (at least once), never lost.

Positions only move forward: a mark lower than one already marked is ignored, and the
callback must not lower a stored position either (``greatest``/``MAX`` in SQL), since a
retried batch may arrive after a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from .._errors import AdapterError
from ._signal import Signal

__all__ = ["CursorFlusher", "CursorKey", "WriteCursors"]

CursorKey = tuple[str, str]
"""``(topic, receiver name)``."""
WriteCursors = Callable[[Mapping[CursorKey, int]], Awaitable[None]]
"""Stores positions (never lowering one); raises ``AdapterError`` if it cannot."""

_log = logging.getLogger("conveyor.adapters")


class CursorFlusher:
    """Marked cursor positions, written by ``write`` in the background (module docstring).

    Args:
        write: Stores a batch of positions; raises ``AdapterError`` on failure (the
            batch is then marked again and retried).
        delay: Seconds between the first mark and the write, so that the marks of that
            time share one write (``0``: the next turn of the event loop).
        retry: Seconds before the first retry after a failure if ``delay`` is shorter;
            each further failure doubles the pause, up to ``2 ** max_backoff`` times.
        refresh: Called every ``refresh_every`` seconds while the flusher runs; the
            positions it returns are written again (so storage that expires idle
            cursors sees the open ones alive). The flusher then runs until ``close``;
            without it, it stops while nothing is marked.
        shield: Let a write that was started finish even if the flusher's caller is
            cancelled (for drivers that must not be interrupted mid-call).
        log: Where failures are reported (the first, then every twentieth).
        name: The background task's name.
    """

    def __init__(
        self,
        write: WriteCursors,
        *,
        delay: float = 0.0,
        retry: float = 0.05,
        max_backoff: int = 7,
        refresh: Callable[[], Iterable[tuple[CursorKey, int]]] | None = None,
        refresh_every: float | None = None,
        shield: bool = False,
        log: logging.Logger | None = None,
        name: str = "conveyor-cursor-flusher",
    ) -> None:
        if refresh is not None and (refresh_every is None or refresh_every <= 0):
            raise ValueError("refresh needs a positive refresh_every")
        self._write = write
        self._delay = delay
        self._retry = retry
        self._max_backoff = max_backoff
        self._refresh = refresh
        self._refresh_every = refresh_every
        self._refreshed = time.monotonic()
        self._shield = shield
        self._log = log or _log
        self._name = name
        self._dirty: dict[CursorKey, int] = {}
        self._in_flight: dict[CursorKey, int] = {}
        self._lock = asyncio.Lock()
        self._marked = Signal()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def mark(self, topic: str, name: str, position: int) -> None:
        """The cursor of ``name`` on ``topic`` is at ``position``: write it soon."""
        key = (topic, name)
        if position > self._dirty.get(key, -1):
            self._dirty[key] = position
        self._marked.fire()
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    def unsaved(self, topic: str, name: str) -> int | None:
        """The highest position marked for the cursor and not yet written (else ``None``)."""
        key = (topic, name)
        marked, writing = self._dirty.get(key), self._in_flight.get(key)
        if marked is None or writing is None:
            return writing if marked is None else marked
        return max(marked, writing)

    @property
    def pending(self) -> int:
        """How many cursors have positions not yet written."""
        return len(self._dirty.keys() | self._in_flight.keys())

    async def flush(self, only: CursorKey | None = None) -> None:
        """Write the marked positions now (all, or only the cursor ``only``).

        Returns once they and any write already in progress are stored. Raises what
        ``write`` raises (``AdapterError``); the positions then stay marked.
        """
        async with self._lock:
            if only is not None:
                position = self._dirty.pop(only, None)
                batch = {} if position is None else {only: position}
            else:
                batch, self._dirty = self._dirty, {}
            if not batch:
                return
            self._in_flight = batch
            try:
                if self._shield:
                    await asyncio.shield(self._write(batch))
                else:
                    await self._write(batch)
            except BaseException:
                for key, position in batch.items():
                    if position > self._dirty.get(key, -1):
                        self._dirty[key] = position
                raise
            finally:
                self._in_flight = {}

    async def close(self) -> None:
        """Stop the background writes and write what is marked (best effort). Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        with contextlib.suppress(AdapterError):
            await self.flush()

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._dirty:
                if self._refresh is None:
                    self._task = None  # nothing to do: the next mark starts it again
                    return
                await self._marked.wait(self._refresh_every)
            self._refresh_if_due()
            pause = self._delay if not failures else max(self._delay, self._retry)
            await asyncio.sleep(pause * 2 ** min(failures, self._max_backoff))
            try:
                await self.flush()
                failures = 0
            except AdapterError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    self._log.warning("cannot write event cursors (will retry): %s", exc)

    def _refresh_if_due(self) -> None:
        every = self._refresh_every
        if self._refresh is None or every is None or time.monotonic() - self._refreshed < every:
            return
        self._refreshed = time.monotonic()
        for (topic, name), position in self._refresh():
            key = (topic, name)
            if position > self._dirty.get(key, -1):
                self._dirty[key] = position
