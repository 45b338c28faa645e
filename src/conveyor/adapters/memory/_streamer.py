"""An in-process event log with push wake-ups, a cursor per receiver name, and tails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..._capabilities import TailBatch
from ..._clock import Clock, SystemClock
from ..._errors import AdapterError
from ..._event import Event
from ..._kit._acks import AckTracker
from ..._kit._sender import EventSenderBase
from ..._kit._signal import Signal
from ..._protocols import Delivery, OutgoingEvent

__all__ = ["MemoryEventStreamer", "MemoryTail"]


@dataclass(slots=True)
class _Topic:
    events: list[Event] = field(default_factory=list)
    appended: Signal = field(default_factory=Signal)


class MemoryEventStreamer:
    """``EventStreamer`` in memory: one log per topic, IDs unique across topics.

    Several workflows (several "instances") may share one streamer on one event loop.
    Receivers are woken by sends; nothing polls. Cursors (per topic and receiver name)
    are positions in the topic's log and persist for the streamer's lifetime. ``tail``
    follows a topic from its end without a cursor (the ``TailsTopics`` capability).
    """

    delivery: Delivery = Delivery.CURSOR

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._topics: dict[str, _Topic] = {}
        self._cursors: dict[tuple[str, str], int] = {}
        self._last_id = 0

    def _topic(self, name: str) -> _Topic:
        t = self._topics.get(name)
        if t is None:
            t = self._topics[name] = _Topic()
        return t

    def _append(self, topic: str, items: Sequence[OutgoingEvent]) -> None:
        t = self._topic(topic)
        now = self._clock.now()
        for foreign_id, event_type, headers in items:
            self._last_id += 1
            t.events.append(Event(self._last_id, foreign_id, event_type, dict(headers), now))
        t.appended.fire()

    def _cursor(self, topic: str, name: str) -> int | None:
        return self._cursors.get((topic, name))

    def _commit(self, topic: str, name: str, position: int) -> None:
        key = (topic, name)
        if position > self._cursors.get(key, 0):
            self._cursors[key] = position

    async def new_sender(self, topic: str) -> MemoryEventSender:
        return MemoryEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MemoryEventReceiver:
        t = self._topic(topic)
        cursor = self._cursor(topic, name)
        if cursor is None:
            cursor = len(t.events) if stream_from_latest else 0
        return MemoryEventReceiver(self, topic, name, t, cursor)

    async def tail(self, topic: str) -> MemoryTail:
        """A tail of ``topic`` from the end of its log now (``TailsTopics``)."""
        t = self._topic(topic)
        return MemoryTail(t, len(t.events))

    async def close(self) -> None:
        """Nothing to release: memory adapters hold no connections. Idempotent."""


class MemoryEventSender(EventSenderBase):
    """Appends to one topic of a ``MemoryEventStreamer``."""

    def __init__(self, streamer: MemoryEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        self._streamer._append(self.topic, events)


class MemoryEventReceiver:
    """Reads one topic of a ``MemoryEventStreamer`` from a named cursor."""

    def __init__(
        self,
        streamer: MemoryEventStreamer,
        topic: str,
        name: str,
        log: _Topic,
        start: int,
    ) -> None:
        self._streamer = streamer
        self._topic_name = topic
        self._name = name
        self._log = log
        self._next = start  # next position to hand out
        # Positions are 1-based in the tracker: its cursor is the number of events passed.
        self._acks = AckTracker(start)
        self._closed = False

    def pending(self) -> int:
        """How many events exist that this receiver has not handed out yet."""
        return len(self._log.events) - self._next

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        events = self._log.events
        while self._next >= len(events):
            if self._closed:
                raise AdapterError(f"receiver {self._name!r} is closed")
            await self._log.appended.wait()
        if self._closed:
            raise AdapterError(f"receiver {self._name!r} is closed")
        start = self._next
        end = min(len(events), start + max(1, max_events))
        self._next = end
        self._acks.hand_out(range(start + 1, end + 1))
        return events[start:end]

    async def ack(self, event: Event) -> None:
        if self._acks.ack(self._position(event) + 1):
            self._streamer._commit(self._topic_name, self._name, self._acks.committed)

    def _position(self, event: Event) -> int:
        # Events handed out by this receiver lie in [start, _next); IDs increase with position.
        events = self._log.events
        first = self._acks.committed
        if first < self._next and events[first].id == event.id:
            return first
        lo, hi = 0, self._next
        while lo < hi:
            mid = (lo + hi) // 2
            if events[mid].id < event.id:
                lo = mid + 1
            else:
                hi = mid
        if lo >= self._next or events[lo].id != event.id:
            raise AdapterError(f"event {event.id} was not handed out by receiver {self._name!r}")
        return lo

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log.appended.fire()


class MemoryTail:
    """Follows one topic of a ``MemoryEventStreamer`` from a position in its log (a
    ``Tail``): woken by the topic's sends, never a gap (the log keeps every event)."""

    def __init__(self, log: _Topic, start: int) -> None:
        self._log = log
        self._next = start  # next position to hand out
        self._closed = False

    def __aiter__(self) -> MemoryTail:
        return self

    async def __anext__(self) -> TailBatch:
        events = self._log.events
        while self._next >= len(events) and not self._closed:
            await self._log.appended.wait()
        if self._closed:
            raise StopAsyncIteration
        start, self._next = self._next, len(events)
        return TailBatch(events[start : self._next])

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log.appended.fire()  # a pending read wakes up and ends the iteration
