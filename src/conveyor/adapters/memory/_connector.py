"""A connector that replays a list of events, with a cursor per consumer name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..._connector import ConnectorEvent
from ..._errors import AdapterError
from ..._kit._acks import AckTracker
from ..._kit._signal import Signal

__all__ = ["MemoryConnector", "MemoryConnectorConsumer"]


class MemoryConnector:
    """``ConnectorConstructor`` over an in-memory list; ``add`` appends more events."""

    def __init__(self, events: Iterable[ConnectorEvent] = ()) -> None:
        self._events: list[ConnectorEvent] = list(events)
        self._cursors: dict[str, int] = {}
        self._appended = Signal()

    def add(self, *events: ConnectorEvent) -> None:
        self._events.extend(events)
        self._appended.fire()

    async def make(self, name: str) -> MemoryConnectorConsumer:
        return MemoryConnectorConsumer(self, name, self._cursors.get(name, 0))

    async def close(self) -> None:
        """Nothing to release: the events stay in memory. Idempotent."""


class MemoryConnectorConsumer:
    """Reads a ``MemoryConnector`` from the cursor of its name."""

    def __init__(self, connector: MemoryConnector, name: str, start: int) -> None:
        self._connector = connector
        self._name = name
        self._next = start
        self._handed: dict[int, int] = {}  # id(event object) -> its 1-based position
        self._acks = AckTracker(start)  # the cursor: how many events are passed
        self._closed = False

    def pending(self) -> int:
        return len(self._connector._events) - self._next

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        events = self._connector._events
        while self._next >= len(events) and not self._closed:
            await self._connector._appended.wait()
        if self._closed:
            raise AdapterError(f"connector consumer {self._name!r} is closed")
        start, end = self._next, min(len(events), self._next + max(1, max_events))
        self._next = end
        batch = events[start:end]
        for position, event in enumerate(batch, start + 1):
            self._handed[id(event)] = position
        self._acks.hand_out(range(start + 1, end + 1))
        return batch

    async def ack(self, event: ConnectorEvent) -> None:
        position = self._handed.pop(id(event), None)
        if position is None:
            raise AdapterError(f"event {event.id!r} was not handed out by {self._name!r}")
        self._acks.ack(position)
        cursors = self._connector._cursors
        cursors[self._name] = max(cursors.get(self._name, 0), self._acks.committed)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._connector._appended.fire()
