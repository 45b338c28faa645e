"""``QueuedTail``: the part of a ``Tail`` that every broker adapter writes the same.

A broker's tail is fed: the adapter's reader (one per streamer, shared by its tails)
pushes each tail the events of its topic past where the tail was opened, and the tail
hands them out as ``TailBatch``es. ``QueuedTail`` is that hand-out side: a queue of the
events pushed and not handed out, a gap flag, a failure, and the iteration and the
idempotent ``close`` the ``Tail`` protocol asks for. The adapter's subclass keeps where
its tail starts (and drops older events before pushing) and says in ``_on_close`` what
closing means to its reader (leaving the hub).

A read takes every event waiting, up to ``batch`` of them, as one batch; a gap pushed
since the last read sets that batch's ``gap`` (a read at that moment re-checks what a
missed event could have changed, so reporting the gap with events pushed before it is
safe). Once ``fail`` was called, a read with nothing waiting raises ``AdapterError``.
After ``close`` (also for a read waiting then) iteration ends, and what is pushed later
is dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Self

from .._capabilities import TailBatch
from .._errors import AdapterError
from .._event import Event
from ._signal import Signal

__all__ = ["QueuedTail"]


class QueuedTail:
    """A ``Tail`` of ``topic`` whose events are pushed to it (module docstring)."""

    def __init__(self, topic: str, *, batch: int = 500) -> None:
        self.topic: str = topic
        self._batch = batch
        self._events: deque[Event] = deque()
        self._gap = False
        self._failure: tuple[str, BaseException] | None = None
        self._signal = Signal()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def push(self, events: Iterable[Event], *, gap: bool = False) -> None:
        """Queue ``events`` (in the topic's order, past what was pushed before), and a gap
        before them if ``gap``: the next read carries it, with or without events."""
        if self._closed:
            return
        before = len(self._events)
        self._events.extend(events)
        if gap:
            self._gap = True
        if gap or len(self._events) > before:
            self._signal.fire()

    def fail(self, message: str, cause: BaseException) -> None:
        """Reads, once nothing waits, raise ``AdapterError(message)`` from ``cause``."""
        self._failure = (message, cause)
        self._signal.fire()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TailBatch:
        while True:
            if self._closed:
                raise StopAsyncIteration
            events = self._events
            if events or self._gap:
                gap, self._gap = self._gap, False
                count = min(self._batch, len(events))
                return TailBatch([events.popleft() for _ in range(count)], gap)
            if self._failure is not None:
                message, cause = self._failure
                raise AdapterError(message) from cause
            await self._signal.wait()

    async def close(self) -> None:
        """Stop: a pending or later read ends the iteration. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._events.clear()
        self._gap = False
        self._signal.fire()
        self._on_close()

    def _on_close(self) -> None:
        """Called once, by the first ``close``: leave the reader feeding this tail."""
