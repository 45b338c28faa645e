"""Tails (``TailsTopics``): cursorless reads of a topic from its end, for waits.

One ephemeral ordered push consumer per tailed topic per streamer (a ``_Hub``), shared by
every tail of that topic there: a tail is a buffer in memory, no consumer or connection of
its own, and one dropped without ``close()`` leaves its hub when collected (the hub's last
tail gone, the hub unsubscribes and deletes its ephemeral consumer). The hub
starts after the stream's last sequence when its first tail opens; a tail opened later
starts after the last sequence at its own opening and skips what is older.

The ordered consumer (nats-py's) checks every sequence: a message missed in transit makes
it start again after the last one it delivered, and its idle heartbeats find a consumer
that vanished. After a reconnect every tail of the streamer hands out a batch with ``gap``
set (perhaps without events) before anything else: messages on their way were lost with
the old connection, and although the consumer starts again after the last sequence it
delivered, the tail's user re-checks rather than trust that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref

import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._tail import QueuedTail
from ._codec import decode, position
from ._connection import NatsConnection, Topic
from ._errors import checkpoint, translate

__all__ = ["NatsTail", "TailHubs"]

log = logging.getLogger("conveyor.adapters.nats")

TAIL_BATCH = 500
"""The most events a tail hands out at once."""
_HEARTBEAT = 5.0


class NatsTail(QueuedTail):
    """Follows one topic of a ``NatsEventStreamer`` from where it was opened (a ``Tail``)."""

    def __init__(self, hub: _Hub, start: int) -> None:
        super().__init__(hub.topic.name, batch=TAIL_BATCH)
        self._start = start
        self._leave = weakref.finalize(self, hub.leave)
        self._leave.atexit = False

    def _offer(self, event: Event) -> None:
        if event.id > self._start and not self.closed:
            self._start = event.id
            self.push((event,))

    def _mark_gap(self) -> None:
        self.push((), gap=True)

    def _on_close(self) -> None:
        self._leave()


class _Hub:
    """The ordered consumer of one topic, feeding its tails."""

    def __init__(self, hubs: TailHubs, topic: Topic) -> None:
        self._hubs = hubs
        self.topic: Topic = topic
        self.tails: weakref.WeakSet[NatsTail] = weakref.WeakSet()
        self.users: int = 0
        self._sub: object | None = None
        self._stopped = False

    async def start(self, after: int) -> None:
        _, js = await self._hubs.conn.client()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            description=f"conveyor tail of {self.topic.name!r}"[:4000],
            inactive_threshold=30.0,
        )
        self._sub = await js.subscribe(
            self.topic.subject,
            stream=self.topic.stream,
            cb=self._on_msg,
            ordered_consumer=True,
            idle_heartbeat=_HEARTBEAT,
            config=config,
        )

    async def _on_msg(self, msg: Msg) -> None:
        try:
            seq, _, _, stored = position(msg)
        except Exception:
            return
        event = decode(msg, seq, stored)
        for tail in list(self.tails):
            tail._offer(event)

    def gap(self) -> None:
        for tail in list(self.tails):
            tail._mark_gap()

    def leave(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._hubs._drop(self)
            with contextlib.suppress(RuntimeError):  # no running loop (interpreter exit)
                task = asyncio.get_running_loop().create_task(self.stop())
                self._hubs._stopping.add(task)
                task.add_done_callback(self._hubs._stopping.discard)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        sub, self._sub = self._sub, None
        if sub is None:
            return
        with contextlib.suppress(Exception):
            await sub.unsubscribe()  # type: ignore[attr-defined]
        consumer = getattr(sub, "_consumer", None)  # the ordered consumer's current one
        if consumer:  # else the server deletes it after inactive_threshold
            with contextlib.suppress(Exception):
                _, js = await self._hubs.conn.client()
                await js.delete_consumer(self.topic.stream, consumer)


class TailHubs:
    """The hubs of one streamer, by topic."""

    def __init__(self, conn: NatsConnection) -> None:
        self.conn: NatsConnection = conn
        self._hubs: dict[str, _Hub] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._hooked = False
        self._closed = False

    async def open(self, topic: Topic) -> NatsTail:
        if self._closed:
            raise AdapterError("the NATS event streamer is closed")
        _, js = await self.conn.client()
        what = f"opening a tail of {topic.name!r}"
        async with self._lock:
            try:
                info = await js.stream_info(topic.stream)
                last = int(info.state.last_seq)
                hub = self._hubs.get(topic.name)
                if hub is None:
                    hub = _Hub(self, topic)
                    await hub.start(last)
                    self._hubs[topic.name] = hub
            except nats.js.errors.NotFoundError as exc:
                self.conn.forget(topic.name)
                raise translate(exc, what, self.conn.url) from exc
            except Exception as exc:
                raise translate(exc, what, self.conn.url) from exc
            if not self._hooked:
                self.conn.on_reconnect(self._on_reconnect)
                self._hooked = True
            tail = NatsTail(hub, last)
            hub.users += 1
            hub.tails.add(tail)
        checkpoint()
        return tail

    def _drop(self, hub: _Hub) -> None:
        if self._hubs.get(hub.topic.name) is hub:
            del self._hubs[hub.topic.name]

    async def _on_reconnect(self) -> None:
        for hub in list(self._hubs.values()):
            hub.gap()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.conn.remove_reconnect_hook(self._on_reconnect)
        hubs = list(self._hubs.values())
        self._hubs.clear()
        for hub in hubs:
            for tail in list(hub.tails):
                await tail.close()
            await hub.stop()
        if self._stopping:
            await asyncio.wait(set(self._stopping))
