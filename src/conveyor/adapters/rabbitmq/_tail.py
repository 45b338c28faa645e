"""Tails of topics (``TailsTopics``): one subscription per tailed topic per streamer.

A tail has no subscription, offset reference or connection of its own: the streamer's
``TailHub`` keeps, for each topic some tail is open on, one subscription of the topic's
events stream (``_Follow``, on the streamer's reading connection, with no offset
reference: nothing is stored on the node), shared by every tail of that topic there; a
tail is a queue in memory (``QueuedTail``). One dropped without ``close()`` leaves its
topic's subscription when collected; the last one gone, the subscription ends.

Where a tail starts. The first tail of a topic subscribes with the offset specification
"next": the node delivers what is written after it took the subscription, so every
event confirmed after ``tail()`` returned comes, and none confirmed before it opened. A
later tail of the topic starts after what the subscription has received, once the node
has sent it everything it had: the hub sends a request (a cursor query) behind the
subscription's credit frames, and when the answer comes with fewer chunks received than
credit given before it, the node had nothing more to send (it sends a subscription what
it has, up to its credit, as it handles the subscribe or credit frame: ``_reading``).

The subscription gives each chunk's credit back as it arrives (tails keep what they are
given in memory, as every broker's tails do). A lost connection, or the topic's stream
deleted, ends the subscription: its tails fail (``AdapterError``), and their users open
new ones, on a new connection, and re-check what they watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from datetime import UTC, datetime

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._tail import QueuedTail
from . import _wire as wire
from ._client import StreamClient
from ._codec import decode
from ._connection import RabbitConnection, Topic
from ._wire import Chunk, Code

__all__ = ["RabbitTail", "TailHub"]

log = logging.getLogger("conveyor.adapters.rabbitmq")

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
        self.stream = topic.stream  # the client ends the subscription if this is deleted
        self._client = client
        self._credit = client.options.credit
        self.tails: weakref.WeakSet[RabbitTail] = weakref.WeakSet()
        self.users = 0
        self._subscription: int | None = None
        self._next = 0  # the offset after the last one received (0: none yet)
        self._given = 0  # credit given to the subscription
        self._chunks = 0  # chunks it delivered
        self._failure: AdapterError | None = None
        self._stopped = False

    async def start(self) -> None:
        """Subscribe from the next chunk written (offset specification "next")."""
        client = self._client
        subscription = self._subscription = client.subscription_id(self)
        self._given = self._credit
        try:
            await client.request(
                functools.partial(
                    wire.subscribe_frame,
                    subscription_id=subscription,
                    stream=self.stream,
                    offset=None,
                    first=False,
                    credit=self._credit,
                ),
                f"subscribing a tail of {self.topic.name!r}",
            )
        except BaseException:
            self._subscription = None
            client.release_subscription(subscription)
            raise

    async def end(self) -> int:
        """The offset after everything the node had for the subscription (module
        docstring): where a tail opened now starts."""
        while True:
            self._check()
            given = self._given
            await self._client.request(
                functools.partial(
                    wire.query_offset_frame, reference=_MARKER_REFERENCE, stream=self.stream
                ),
                f"opening a tail of {self.topic.name!r}",
                allow=(Code.NO_OFFSET,),
            )
            self._check()
            if given > self._chunks:
                return self._next

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stopped:
            raise AdapterError(f"the tails of {self.topic.name!r} are closed")

    def add(self, tail: RabbitTail) -> None:
        self.users += 1
        self.tails.add(tail)

    # ------------------------------------------------------------------ from the client

    def deliver(self, chunk: Chunk) -> None:
        if self._stopped:
            return
        self._chunks += 1
        self._give(1)
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
        self._subscription = None
        self._failure = error
        self._hub._drop(self)
        for tail in list(self.tails):
            tail.fail(f"the tail of RabbitMQ topic {self.topic.name!r} failed", error)

    def _give(self, credit: int) -> None:
        subscription = self._subscription
        if subscription is None or not self._client.alive:
            return
        with contextlib.suppress(AdapterError):
            self._client.send(wire.credit_frame(subscription, credit))
            self._given += credit

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
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        client = self._client
        try:
            if client.alive:
                with contextlib.suppress(AdapterError):
                    await client.request(
                        functools.partial(wire.unsubscribe_frame, subscription_id=subscription),
                        f"closing the tails of {self.topic.name!r}",
                        allow=(Code.SUBSCRIPTION_ID_DOES_NOT_EXIST,),
                    )
        finally:
            client.release_subscription(subscription)


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
