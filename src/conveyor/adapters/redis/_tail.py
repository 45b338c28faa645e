"""Tails of topics (``TailsTopics``): one blocking ``XREAD`` per streamer for all of them.

A tail has no consumer group, no cursor and no connection of its own: the streamer's
``TailHub`` follows every topic some tail is open on with one ``XREAD ... BLOCK`` over
all their streams (on the hub's one connection), from the position it has handed out up
to, and gives each tail the events after the position where that tail was opened (the
topic's counter at ``tail()``: IDs are taken and appended in one script, so every event
with a higher ID comes after the call). The read also watches a small stream of the hub's
own (``<prefix>:tailwake:<id>``): opening a tail on a new topic appends to it, so the
waiting read returns and starts again with the new topic in its list.

Gaps. Reading a stream after an ID misses nothing while the server keeps its entries, so
a failed read is simply sent again from the same positions; but every tail then gets a
batch with ``gap`` set, since the failure may have been a restart of a Redis without
persistence, whose new events reuse IDs (the hub then starts again at the topics' current
ends). Not detected: events trimmed before the hub read them (a tail behind by more than
``event_retention``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._tail import QueuedTail
from ._client import RedisClient
from ._entries import entry_id, events_of

if TYPE_CHECKING:
    from ._streamer import RedisEventStreamer

__all__ = ["RedisTail", "TailHub"]

log = logging.getLogger("conveyor.adapters.redis")

_BATCH = 500
"""The most events one read takes per topic."""


class RedisTail(QueuedTail):
    """Follows one topic from where it was opened (``Tail``); see the module docstring."""

    def __init__(self, hub: TailHub, topic: str, start: int) -> None:
        super().__init__(topic, batch=_BATCH)
        self._hub = hub
        self.start: int = start
        """Events with higher IDs than this are handed out."""

    def _push(self, events: list[Event], gap: bool = False) -> None:
        events = [e for e in events if e.id > self.start]
        if events:
            self.start = events[-1].id
        self.push(events, gap=gap)

    def _restart(self, start: int) -> None:
        self.start = start

    def _on_close(self) -> None:
        self._hub._leave(self)


class _Follow:
    __slots__ = ("position", "tails")

    def __init__(self, position: int) -> None:
        self.position = position
        self.tails: weakref.WeakSet[RedisTail] = weakref.WeakSet()


class TailHub:
    """The reads of one streamer's tails (module docstring)."""

    def __init__(self, client: RedisClient, streamer: RedisEventStreamer) -> None:
        self._client = client
        self._keys = client.options.keys
        self._streamer = streamer
        self._wake_key = f"{self._keys.prefix}:tailwake:{uuid.uuid4().hex}"
        self._wake_seen = "0-0"
        self._follows: dict[str, _Follow] = {}
        self._conn = client.blocking()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, topic: str) -> RedisTail:
        """A tail of ``topic`` from the topic's current end."""
        counter = await self._client.command(
            f"tailing topic {topic!r}", "GET", self._keys.sequence(topic)
        )
        start = int(counter or 0)
        tail = RedisTail(self, topic, start)
        follow = self._follows.get(topic)
        new = follow is None
        if follow is None:
            follow = self._follows[topic] = _Follow(start)
        follow.tails.add(tail)  # before any await: the read drops topics without tails
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="conveyor-redis-tails"
            )
        elif new:
            await self._wake()
        return tail

    def _leave(self, tail: RedisTail) -> None:
        follow = self._follows.get(tail.topic)
        if follow is not None:
            follow.tails.discard(tail)

    async def _wake(self) -> None:
        await self._client.pipeline(
            "waking the tails' read",
            [
                ("XADD", self._wake_key, "MAXLEN", "~", 16, "*", "w", 1),
                ("PEXPIRE", self._wake_key, 86_400_000),
            ],
        )

    async def _run(self) -> None:
        failures = 0
        while True:
            for topic in [t for t, f in self._follows.items() if not f.tails]:
                del self._follows[topic]
            if not self._follows:
                return
            topics = list(self._follows)
            streams = [self._keys.stream(t) for t in topics]
            ids = [f"{self._follows[t].position}-0" for t in topics]
            try:
                reply = await self._conn.command(
                    "tailing topics",
                    "XREAD",
                    "COUNT",
                    _BATCH,
                    "BLOCK",
                    round(self._conn.block * 1000),
                    "STREAMS",
                    self._wake_key,
                    *streams,
                    self._wake_seen,
                    *ids,
                )
            except AdapterError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("tails cannot read from Redis: %s", exc)
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                with contextlib.suppress(AdapterError):
                    await self._after_failure()
                continue
            failures = 0
            self._dispatch(dict(zip(streams, topics, strict=True)), reply)

    def _dispatch(self, topics: dict[str, str], reply: Any) -> None:
        for raw_key, entries in reply or ():
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            if key == self._wake_key:
                if entries:
                    last = entries[-1][0]
                    self._wake_seen = last.decode() if isinstance(last, bytes) else str(last)
                continue
            topic = topics.get(key)
            follow = self._follows.get(topic) if topic is not None else None
            if follow is None or not entries:
                continue
            follow.position = max(follow.position, entry_id(entries[-1][0]))
            events = events_of(entries)
            self._streamer.saw(topic or "", follow.position)
            for tail in list(follow.tails):
                tail._push(events)

    async def _after_failure(self) -> None:
        """After a failed read: every tail gets a gap, and a topic whose counter went back
        (a restarted Redis) is followed again from its current end."""
        for topic, follow in list(self._follows.items()):
            counter = await self._client.command(
                f"tailing topic {topic!r}", "GET", self._keys.sequence(topic)
            )
            now = int(counter or 0)
            if now < follow.position:
                follow.position = now
                for tail in list(follow.tails):
                    tail._restart(now)
            for tail in list(follow.tails):
                tail._push([], gap=True)

    async def close(self) -> None:
        """End every tail and the read. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        for follow in self._follows.values():
            for tail in list(follow.tails):
                await tail.close()
        self._follows.clear()
        await self._conn.close()
        with contextlib.suppress(AdapterError):
            await self._client.command("closing the tails", "DEL", self._wake_key)
