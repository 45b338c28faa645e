"""Tails of topics (``TailsTopics``): one subscription per tailed topic per streamer.

A tail has no subscription, offset reference or connection of its own: the streamer's
``TailHub`` keeps, for each topic some tail is open on, one subscription of the topic's
events stream (``_Follow``, on the streamer's main connection, with no offset
reference: nothing is stored on the node), shared by every tail of that topic there; a
tail is a queue in memory (``QueuedTail``). One dropped without ``close()`` leaves its
topic's subscription when collected; the last one gone, the subscription ends.

Where a tail starts. The first tail of a topic subscribes with the offset specification
"next": the node delivers what is written after it took the subscription, so every
event confirmed after ``tail()`` returned comes, and none confirmed before it opened. A
later tail of the topic starts after what the subscription has received, once the node
has sent it everything it had (``Subscribed.sent_all``).

The subscription gives each chunk's credit back as it arrives (tails keep what they are
given in memory, as every broker's tails do). A lost connection, or the topic's stream
deleted, ends the subscription: its tails fail (``AdapterError``), and their users open
new ones, on a new connection, and re-check what they watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from datetime import UTC, datetime

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._tail import QueuedTail
from . import _wire as wire
from ._client import StreamClient
from ._codec import decode
from ._connection import RabbitConnection, Topic
from ._subscription import Subscribed
from ._wire import Chunk

__all__ = ["RabbitTail", "TailHub"]

TAIL_BATCH = 500
"""The most events a tail hands out at once."""
_MARKER_REFERENCE = "conveyor-tail"
"""The offset reference the hub queries as its marker (never stored: the answer is
``NO_OFFSET``)."""


class RabbitTail(QueuedTail):
    """Follows one topic of a ``RabbitEventStreamer`` from where it was opened (a ``Tail``)."""

    def __init__(self, follow: _Follow, start: int) -> None:
        super().__init__(follow.topic.name, batch=TAIL_BATCH)
        self._start = start
        """The first offset handed out."""
        self._leave = weakref.finalize(self, follow.leave)
        self._leave.atexit = False

    def _offer(self, first: int, events: list[Event]) -> None:
        """``events`` at offsets from ``first`` on: those at or past the start."""
        skip = self._start - first
        if skip > 0:
            events = events[skip:]
        if events:
            self._start = events[-1].id + 1
            self.push(events)

    def _on_close(self) -> None:
        self._leave()


class _Follow:
    """The subscription of one topic's events stream, feeding its tails."""

    def __init__(self, hub: TailHub, topic: Topic, client: StreamClient) -> None:
        self._hub = hub
        self.topic = topic
        self.stream: str = topic.stream  # the client ends the subscription if this is deleted
        self._sub = Subscribed(client, topic.stream, f"the tails of {topic.name!r}")
        self.tails: weakref.WeakSet[RabbitTail] = weakref.WeakSet()
        self.users: int = 0
        self._next = 0  # the offset after the last one received (0: none yet)
        self._failure: AdapterError | None = None
        self._stopped = False

    async def start(self) -> None:
        """Subscribe from the next chunk written (offset specification "next")."""
        await self._sub.open(self, offset=None, first=False)

    async def end(self) -> int:
        """The offset after everything the node had for the subscription (module
        docstring): where a tail opened now starts."""
        while True:
            self._check()
            sent_all = await self._sub.sent_all(_MARKER_REFERENCE, self.stream)
            self._check()
            if sent_all:
                return self._next

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stopped:
            raise AdapterError(f"the tails of {self.topic.name!r} are closed")

    def add(self, tail: RabbitTail) -> None:
        self.users += 1
        self.tails.add(tail)
        if self._failure is not None:  # lost while the tail was being opened
            self._fail(tail, self._failure)

    def _fail(self, tail: RabbitTail, error: AdapterError) -> None:
        tail.fail(f"the tail of RabbitMQ topic {self.topic.name!r} failed", error)

    # ------------------------------------------------------------------ from the client

    def deliver(self, chunk: Chunk) -> None:
        if self._stopped:
            return
        self._sub.arrived()
        self._sub.give(1)
        first = chunk.first_offset
        created_at = datetime.fromtimestamp(chunk.timestamp_ms / 1000, UTC)
        events = [
            decode(data, first + i, created_at).event
            for i, data in enumerate(wire.chunk_records(chunk))
        ]
        self._next = max(self._next, first + len(events))
        for tail in list(self.tails):
            tail._offer(first, events)

    def lost(self, error: AdapterError) -> None:
        self._sub.lost()
        self._failure = error
        self._hub._drop(self)
        for tail in list(self.tails):
            self._fail(tail, error)

    # ------------------------------------------------------------------ leaving

    def leave(self) -> None:
        """A tail closed (or was collected); the last one ends the subscription."""
        self.users -= 1
        if self.users <= 0:
            self._hub._drop(self)
            with contextlib.suppress(RuntimeError):  # no running loop (interpreter exit)
                self._hub._track(asyncio.get_running_loop().create_task(self.stop()))

    async def stop(self) -> None:
        """End the subscription. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self._sub.close()


class TailHub:
    """The tails' subscriptions of one streamer, by topic (module docstring)."""

    def __init__(self, conn: RabbitConnection) -> None:
        self._conn = conn
        self._follows: dict[str, _Follow] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    async def open(self, topic: str) -> RabbitTail:
        """A tail of ``topic`` from its current end."""
        async with self._lock:
            if self._closed:
                raise AdapterError("the RabbitMQ event streamer is closed")
            follow = self._follows.get(topic)
            if follow is None:
                where = await self._conn.ensure(topic)
                follow = _Follow(self, where, await self._conn.client())
                await follow.start()
                self._follows[topic] = follow
                start = 0  # the subscription delivers only what came after it
            else:
                start = await follow.end()
            tail = RabbitTail(follow, start)
            follow.add(tail)
            return tail

    def _drop(self, follow: _Follow) -> None:
        if self._follows.get(follow.topic.name) is follow:
            del self._follows[follow.topic.name]

    def _track(self, task: asyncio.Task[None]) -> None:
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """End every tail and subscription. Idempotent."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            follows = list(self._follows.values())
            self._follows.clear()
        for follow in follows:
            for tail in list(follow.tails):
                await tail.close()
            await follow.stop()
        if self._stopping:
            await asyncio.wait(set(self._stopping))
