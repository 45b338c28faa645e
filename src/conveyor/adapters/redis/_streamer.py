"""``RedisEventStreamer``: events on Redis Streams, a consumer group per receiver name.

Topics. One stream per topic (``<prefix>:events:{<topic>}``). A send appends its events
in one Lua script that takes their IDs from the topic's counter and ``XADD``s them with
the explicit IDs ``N-0`` (``_entries``), so a batch is atomic and IDs are consecutive
integers: the engine's shards (``event.id % n``) get even shares.

Receivers (``Delivery.PER_EVENT``). A receiver name is a consumer group of the topic's
stream, created (``XGROUP CREATE ... MKSTREAM``) at ``new_receiver``: from ``0``, so a
new name reads every retained event from the start, or, with ``stream_from_latest``, from
``$``, the stream's end at that moment; an existing group keeps its position. Within the
group a receiver reads as the consumer named after its streamer (one per process), with
``XREADGROUP``: after a read that found entries, without ``BLOCK`` on the client's
pipelined connection (with the commands in flight); else with ``BLOCK`` on a connection of
its own (a cancelled read abandons it). What a cancelled or failed read may have received
is read again from the consumer's pending entries, so a cancelled ``recv`` loses nothing.
It acknowledges events with ``XACK``, sent in the
background: the IDs acknowledged while one is in flight go together in the next, and
``close`` sends what is left. So a
receiver opened again under the same name in the same process first reads the consumer's
unacknowledged entries (``XREADGROUP ... 0``): it gets at once exactly what was handed out
and never acknowledged, then what is new. Entries that another consumer (a process that
died, or closed its receiver) left unacknowledged are taken over with ``XAUTOCLAIM`` once
idle for ``claim_idle`` seconds (checked when the receiver opens and then every
``claim_idle / 2`` seconds between reads) and delivered again; a receiver that closes
marks its unacknowledged entries idle at once, so another process's receiver of the name
takes them over when it opens. A delivery again may come after events with higher IDs.

Trimming (``trim``; every ``trim_interval`` seconds for the topics a streamer sends to).
An entry is removed once every group of the topic has acknowledged it *and* it is at
least ``event_retention`` seconds old: the floor of a group is its lowest pending ID, or,
with nothing pending, the one after its last delivered ID (``XINFO GROUPS``,
``XPENDING``); the stream is trimmed with ``XTRIM MINID`` to the lowest floor, but never
past the first entry younger than the retention (found by a binary search over IDs on the
entries' server-clock timestamps, in the script). A topic with no group keeps its events
for ``event_retention``. A group nobody reads any more holds its topic's events: delete
it with ``XGROUP DESTROY`` when a receiver name is retired.

A Redis without persistence that restarts loses streams, counters and groups: IDs start
again from 1, and open receivers find their group gone (``NOGROUP``) and create it again
from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

from ..._errors import AdapterError
from ..._event import Event
from ..._protocols import Delivery, OutgoingEvent
from ._client import BlockingConnection, RedisClient
from ._entries import RELEASE, SEND, TRIM, entry_id, events_of, send_args, stream_entries
from ._tail import RedisTail, TailHub

__all__ = ["RedisEventReceiver", "RedisEventSender", "RedisEventStreamer"]

log = logging.getLogger("conveyor.adapters.redis")

_RELEASED_IDLE_MS = 10**12
"""Idle time (ms) a closing receiver gives its unacknowledged entries: claimable at once."""
_RELEASE_PAGE = 500
"""Pending entries the release script lists (``XPENDING``) and releases per ``XCLAIM``."""


class RedisEventStreamer:
    """``EventStreamer`` on Redis Streams (see the module docstring); ``TailsTopics`` too.

    ``client`` is shared (closing the streamer does not close it) unless ``owns_client``.
    ``consumer`` names this process within every group (default: a random ID per streamer).
    """

    delivery: ClassVar[Delivery] = Delivery.PER_EVENT

    def __init__(
        self, client: RedisClient, *, consumer: str | None = None, owns_client: bool = False
    ) -> None:
        self._client = client
        self._keys = client.options.keys
        self.consumer: str = consumer or uuid.uuid4().hex
        self._owns_client = owns_client
        self._known: dict[str, int] = {}  # topic -> highest ID known to exist (this process)
        self._sent: set[str] = set()  # topics this streamer sent to (trimmed by it)
        self._open: set[RedisEventReceiver] = set()
        self._hub = TailHub(client, self)
        self._trimmer: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ what receivers know

    def known(self, topic: str) -> int:
        """The highest event ID of ``topic`` this process knows to exist."""
        return self._known.get(topic, 0)

    def saw(self, topic: str, event_id: int) -> None:
        """Note that ``topic`` holds ``event_id``."""
        if event_id > self._known.get(topic, 0):
            self._known[topic] = event_id

    def appended(self, topic: str, event_id: int) -> None:
        """Note that a record store's write appended ``event_id`` to ``topic`` (as a send
        would): this process's receivers count it as pending at once, and the streamer
        trims the topic like those it sends to."""
        self.saw(topic, event_id)
        if topic not in self._sent and not self._closed:
            self._sent.add(topic)
            self._start_trimming()

    # ------------------------------------------------------------------ the contract

    async def new_sender(self, topic: str) -> RedisEventSender:
        """A sender for ``topic``."""
        self._check_open()
        self._sent.add(topic)
        self._start_trimming()
        return RedisEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> RedisEventReceiver:
        """A receiver for ``topic`` in the consumer group ``name`` (created if new: from the
        start, or from the stream's end now with ``stream_from_latest``). ``poll_interval``
        is ignored: reads block on the server until an event arrives."""
        self._check_open()
        receiver = RedisEventReceiver(self, topic, name)
        await receiver._open(stream_from_latest)
        self._open.add(receiver)
        return receiver

    async def tail(self, topic: str) -> RedisTail:
        """A tail of ``topic`` from its current end (``TailsTopics``)."""
        self._check_open()
        return await self._hub.open(topic)

    async def close(self) -> None:
        """Close every receiver and tail, stop trimming. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._trimmer is not None:
            self._trimmer.cancel()
            await asyncio.wait({self._trimmer})
        for receiver in list(self._open):
            await receiver.close()
        await self._hub.close()
        if self._owns_client:
            await self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("event streamer is closed")

    # ------------------------------------------------------------------ sending

    async def _send(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        if not events:
            return
        keys = self._keys
        last = await self._client.run(
            f"sending to topic {topic!r}",
            SEND,
            [keys.stream(topic), keys.sequence(topic)],
            send_args(events),
        )
        self.saw(topic, int(last))

    # ------------------------------------------------------------------ trimming

    def _start_trimming(self) -> None:
        interval = self._client.options.trim_interval
        if interval > 0 and (self._trimmer is None or self._trimmer.done()):
            self._trimmer = asyncio.get_running_loop().create_task(
                self._trim_loop(interval), name="conveyor-redis-trim"
            )

    async def _trim_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for topic in sorted(self._sent):
                try:
                    await self.trim(topic)
                except AdapterError as exc:
                    log.warning("cannot trim topic %r: %s", topic, exc)

    async def trim(self, topic: str) -> int:
        """Remove the events of ``topic`` every group has acknowledged and that are older
        than ``event_retention`` (module docstring); how many were removed."""
        keys = self._keys
        stream = keys.stream(topic)
        what = f"trimming topic {topic!r}"
        groups = await self._groups(stream, what)
        floors: list[int] = []
        for group in groups:
            name, pending, last = group
            if pending:
                summary = await self._client.command(what, "XPENDING", stream, name)
                floors.append(entry_id(summary["min"]) if summary.get("min") else last + 1)
            else:
                floors.append(last + 1)
            await self._drop_idle_consumers(stream, name, what)
        floor = min(floors) if floors else 2**53
        keep_ms = round(self._client.options.event_retention * 1000)
        removed = await self._client.run(
            what, TRIM, [stream, keys.sequence(topic)], [floor, keep_ms]
        )
        return int(removed)

    async def _groups(self, stream: str, what: str) -> list[tuple[bytes, int, int]]:
        try:
            reply = await self._client.command(what, "XINFO", "GROUPS", stream)
        except AdapterError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise
        groups: list[tuple[bytes, int, int]] = []
        for info in reply or ():
            groups.append(
                (info[b"name"], int(info[b"pending"]), entry_id(info[b"last-delivered-id"]))
            )
        return groups

    async def _drop_idle_consumers(self, stream: str, group: bytes, what: str) -> None:
        """Forget consumers with nothing pending, idle longer than ``claim_idle`` (each
        process adds one; a live one is made again by its next read)."""
        idle_ms = self._client.options.claim_idle * 1000
        for info in await self._client.command(what, "XINFO", "CONSUMERS", stream, group) or ():
            if int(info[b"pending"]) == 0 and int(info[b"idle"]) > idle_ms:
                await self._client.command(
                    what, "XGROUP", "DELCONSUMER", stream, group, info[b"name"]
                )


class RedisEventSender:
    """Appends events to one topic (``EventSender``)."""

    def __init__(self, streamer: RedisEventStreamer, topic: str) -> None:
        self._streamer = streamer
        self.topic: str = topic
        self._closed = False

    async def send(self, foreign_id: str, event_type: int, headers: Any) -> None:
        """Append one event. Raises ``AdapterError`` if it could not be appended."""
        await self.send_many([OutgoingEvent(foreign_id, event_type, headers)])

    async def send_many(self, events: Sequence[OutgoingEvent]) -> None:
        """Append several events in order, atomically (one script)."""
        if self._closed:
            raise AdapterError("event sender is closed")
        await self._streamer._send(self.topic, events)

    async def close(self) -> None:
        """Release resources (none of its own). Idempotent."""
        self._closed = True


class RedisEventReceiver:
    """Reads one topic in the consumer group ``name`` (``EventReceiver``, ``ReportsPending``)."""

    def __init__(self, streamer: RedisEventStreamer, topic: str, name: str) -> None:
        client = streamer._client
        self._streamer = streamer
        self._client = client
        self.topic: str = topic
        self.name: str = name
        self._stream = client.options.keys.stream(topic)
        self._consumer = streamer.consumer
        self._conn: BlockingConnection = client.blocking()
        self._handed: set[int] = set()  # handed out, not acknowledged
        self._history: str | None = "0"  # re-read own pending entries after this ID
        self._history_left = 0  # how many own pending entries are still to re-read (a hint)
        self._delivered = 0  # highest ID the group delivered as far as this receiver knows
        self._claim_at = 0.0  # monotonic time of the next XAUTOCLAIM pass
        self._claim_from = "0-0"
        self._more = False  # the last read of new entries found some: try again unblocked
        self._acks: list[str] = []  # acknowledged, XACK not yet sent
        self._acked: set[int] = set()  # acknowledged, XACK not yet done (not handed again)
        self._acking: asyncio.Task[None] | None = None  # the XACK in flight
        self._closed = False

    @property
    def _what(self) -> str:
        return f"receiving from topic {self.topic!r} as {self.name!r}"

    async def _open(self, from_latest: bool) -> None:
        """Create the group if new, and learn where it stands: one round trip."""
        keys = self._client.options.keys
        what = self._what
        start = "$" if from_latest else "0"
        created, counter, groups, summary = await self._client.pipeline(
            what,
            [
                ("XGROUP", "CREATE", self._stream, self.name, start, "MKSTREAM"),
                ("GET", keys.sequence(self.topic)),
                ("XINFO", "GROUPS", self._stream),
                ("XPENDING", self._stream, self.name),
            ],
        )
        if isinstance(created, AdapterError) and "BUSYGROUP" not in str(created):
            raise created
        for reply in (counter, groups, summary):
            if isinstance(reply, AdapterError):
                raise reply
        self._streamer.saw(self.topic, int(counter or 0))
        for info in groups or ():
            if _text(info[b"name"]) == self.name:
                self._delivered = entry_id(info[b"last-delivered-id"])
        for consumer in summary.get("consumers") or ():
            if _text(consumer["name"]) == self._consumer:  # others' come by XAUTOCLAIM
                self._history_left = int(consumer["pending"])

    async def _create_group(self, start: str) -> None:
        try:
            await self._client.command(
                self._what, "XGROUP", "CREATE", self._stream, self.name, start, "MKSTREAM"
            )
        except AdapterError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def pending(self) -> int:
        """Events of the topic this receiver has not handed out, as far as this process
        knows: its consumer's entries still to re-read plus the topic's events past what
        the group delivered (a hint, see ``ReportsPending``)."""
        behind = max(0, self._streamer.known(self.topic) - self._delivered)
        return self._history_left + behind

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        """Wait for at least one event; hand out 1..``max_events`` (cancellable)."""
        max_events = max(1, max_events)
        while True:
            if self._closed:
                raise AdapterError("event receiver is closed")
            if self._history is not None:
                events = await self._read_history(max_events)
            elif time.monotonic() >= self._claim_at:
                events = await self._claim(max_events)
            else:
                events = await self._read_new(max_events)
            if events:
                self._handed.update(e.id for e in events)
                return events

    async def _read_history(self, max_events: int) -> list[Event]:
        after = self._history or "0"
        reply = await self._group_read(
            self._client.command, "COUNT", max_events, "STREAMS", self._stream, after
        )
        entries = stream_entries(reply)
        if not entries:
            self._history = None
            self._history_left = 0
            return []
        self._history = _text(entries[-1][0])
        fresh = [e for e in events_of(entries) if self._new(e.id)]
        self._history_left = max(0, self._history_left - len(fresh))
        return fresh

    async def _claim(self, max_events: int) -> list[Event]:
        options = self._client.options
        reply = await self._client.command(
            self._what,
            "XAUTOCLAIM",
            self._stream,
            self.name,
            self._consumer,
            round(options.claim_idle * 1000),
            self._claim_from,
            "COUNT",
            max_events,
        )
        following = _text(reply[0]) if reply else "0-0"
        self._claim_from = following
        if following == "0-0":  # a full pass: the next one after a while
            self._claim_at = time.monotonic() + options.claim_idle / 2
        return [e for e in events_of(reply[1] if reply else ()) if self._new(e.id)]

    def _new(self, event_id: int) -> bool:
        """Whether an entry read again is neither handed out nor acknowledged already."""
        return event_id not in self._handed and event_id not in self._acked

    async def _read_new(self, max_events: int) -> list[Event]:
        """New entries: after a read that found some, first without blocking on the
        client's pipelined connection (where the read shares a write and a round trip with
        the other commands in flight: under load most reads find entries, and a blocking
        read of its own cost a send and a wake-up each); else a blocking read on this
        receiver's own connection."""
        if self._more:
            events = await self._read_group_new(self._client.command, "COUNT", max_events)
            if events:
                return events
        block = round(self._conn.block * 1000)
        wait = max(1, min(block, round((self._claim_at - time.monotonic()) * 1000)))
        return await self._read_group_new(self._conn.command, "COUNT", max_events, "BLOCK", wait)

    async def _read_group_new(self, command: Any, *args: object) -> list[Event]:
        try:
            reply = await self._group_read(command, *args, "STREAMS", self._stream, ">")
        except BaseException:
            # Cancelled or failed: the server may have delivered entries to this consumer
            # whose reply never arrived; they are in its pending entries, read them again.
            self._history = "0"
            self._more = False
            raise
        events = events_of(stream_entries(reply))
        self._more = bool(events)
        if events:
            self._delivered = max(self._delivered, events[-1].id)
            self._streamer.saw(self.topic, events[-1].id)
        return events

    async def _group_read(self, command: Any, *args: object) -> Any:
        """``XREADGROUP`` as this consumer; a group that vanished (a restarted Redis) is
        created again from the start."""
        what = self._what
        try:
            return await command(what, "XREADGROUP", "GROUP", self.name, self._consumer, *args)
        except AdapterError as exc:
            if "NOGROUP" not in str(exc):
                raise
        await self._create_group("0")
        self._delivered = 0
        return await command(what, "XREADGROUP", "GROUP", self.name, self._consumer, *args)

    async def ack(self, event: Event) -> None:
        """Acknowledge one event handed out by this receiver.

        Acknowledgements are sent in the background, one ``XACK`` with every ID
        acknowledged meanwhile, at most one in flight per receiver (the next batch gathers
        while it is); ``close`` sends what is left. One that fails is sent again with the
        next batch; one lost with the process means a delivery again (at least once)."""
        self._handed.discard(event.id)
        self._acked.add(event.id)
        self._acks.append(f"{event.id}-0")
        if self._acking is None or self._acking.done():
            self._acking = asyncio.get_running_loop().create_task(
                self._send_acks(), name="conveyor-redis-ack"
            )

    async def _send_acks(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self._client.command(self._what, "XACK", self._stream, self.name, *batch)
                self._acked.difference_update(entry_id(i) for i in batch)
            except AdapterError as exc:
                self._acks[:0] = batch  # again with the next batch (or at close)
                log.warning(
                    "cannot acknowledge %d events on topic %r: %s", len(batch), self.topic, exc
                )
                return

    async def _flush_acks(self) -> None:
        """Wait for the XACK in flight, then send what is left (errors suppressed)."""
        if self._acking is not None:
            await asyncio.wait({self._acking})
            self._acking = None
        if self._acks:
            batch, self._acks = self._acks, []
            with contextlib.suppress(AdapterError):
                await self._client.command(self._what, "XACK", self._stream, self.name, *batch)

    async def close(self) -> None:
        """Stop receiving; what was handed out and not acknowledged may be taken over by a
        receiver of the name in another process at once; what was acknowledged is sent
        first. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._streamer._open.discard(self)
        await self._conn.close()
        await self._flush_acks()
        with contextlib.suppress(AdapterError):
            await self._release_pending()
        self._handed.clear()

    async def _release_pending(self) -> None:
        """Make every entry still pending for this consumer claimable at once: those handed
        out and not acknowledged, and those a cancelled read had the server deliver while
        its reply never came (a hand-over cancels an idle receiver in its blocking read;
        left alone, those would wait ``claim_idle`` for another process's ``XAUTOCLAIM``)."""
        await self._client.run(
            self._what,
            RELEASE,
            [self._stream],
            [self.name, self._consumer, _RELEASED_IDLE_MS, _RELEASE_PAGE],
        )


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
