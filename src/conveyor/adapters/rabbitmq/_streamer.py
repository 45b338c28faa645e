"""``RabbitEventStreamer``: conveyor's topics on RabbitMQ streams (the stream protocol).

Layout: a stream per topic, ``<prefix>.<topic>`` (``_names``), holding nothing but the
topic's events, so an event's ID is its offset and a topic's IDs are consecutive (0, 1,
2, ...): the engine's shards (``id % parallel_count``) split them evenly. The receivers'
offsets live beside it, in the topic's cursor stream ``<prefix>~.<topic>``, which holds
no messages, only the node's offset tracking: tracking written into the events stream
would take offsets there too and leave gaps in the IDs.

Retention is the stream's (``max_age``, 7 days by default; ``max_length_bytes``): events
stay for every reader, acknowledged or not, so a new receiver name reads every retained
event from the start, or, with ``stream_from_latest``, from the next event written after
``new_receiver`` subscribed.

Receivers. A receiver name is an offset reference (``_reading``): delivery is
``Delivery.CURSOR``. Acknowledgements are per event, in any order; the stored cursor
moves over the unbroken run of acknowledged events, and a receiver opened again under
the name (after a close, or another process's crash) starts right after it at once:
nothing waits for a timeout. Events come in offset order, also the second time.

Pending (``ReportsPending``): each event carries the sending streamer's token and its
count of events sent to the topic (``_codec``). A receiver reports what it holds and has
not handed out, plus how many of its own streamer's events it has not received yet (its
streamer's count for the topic, less the highest count it received): an event this
process sent is pending at once, one another process sent once it arrives (push: within
a round trip). A receiver opened again under a name in the same process starts from what
the last one left unacknowledged; under a name another process read, events this process
sent before count as pending until one sent later arrives.

Tails (``TailsTopics``, for ``Workflow.wait``): one subscription per tailed topic, from
the stream's next chunk, shared by the streamer's tails of that topic (``_tail``).

Copies of an engine event (the relay sending again after a crash) are handed out once:
the first copy among the last ``dedupe_window`` offsets (``_reading``), as the PostgreSQL
log and NATS (``Nats-Msg-Id``) drop them on the way in.

Sending publishes with confirms: ``send_many`` writes the batch (as few frames as the
node's frame size allows) and returns once the node confirmed every event; a refused
event fails the call with ``AdapterError``, a confirm that does not come within
``request_timeout`` or a lost connection with ``AdapterUnavailable`` (the caller, the
outbox relay, sends again; the engine's version rule makes a copy harmless).
"""

from __future__ import annotations

import functools
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from ..._errors import AdapterError
from ..._event import Event, Header
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from ._client import StreamMissing
from ._codec import Decoded, decode, encode
from ._connection import RabbitConnection, Topic
from ._names import reference
from ._reading import CursorReader
from ._tail import RabbitTail, TailHub

__all__ = ["RabbitEventReceiver", "RabbitEventSender", "RabbitEventStreamer"]


class RabbitEventStreamer:
    """``EventStreamer`` on RabbitMQ streams (see the module docstring).

    ``RabbitEventStreamer("rabbitmq-stream://guest:guest@127.0.0.1:5552/?prefix=app")``
    opens (on first use) and owns a connection; ``RabbitEventStreamer(connection)``
    shares one it does not close.
    """

    delivery: ClassVar[Delivery] = Delivery.CURSOR

    def __init__(self, connection: RabbitConnection | str, **options: Any) -> None:
        if isinstance(connection, str):
            self._conn = RabbitConnection(connection, **options)
            self._owns = True
        else:
            if options:
                raise TypeError("options go to the RabbitConnection, not the streamer")
            self._conn = connection
            self._owns = False
        self._receivers: set[RabbitEventReceiver] = set()
        self._token = uuid.uuid4().hex[:8]
        self._sent: dict[str, int] = {}  # stream -> events this streamer sent to it
        self._resume: dict[tuple[str, str], int] = {}  # (stream, name) -> own count seen
        self._tails = TailHub(self._conn)
        self._closed = False

    @property
    def connection(self) -> RabbitConnection:
        """The connection the streamer uses."""
        return self._conn

    async def new_sender(self, topic: str) -> RabbitEventSender:
        self._check_open()
        self._conn.topic(topic)  # a name RabbitMQ cannot take fails here
        return RabbitEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> RabbitEventReceiver:
        """A receiver reading ``topic`` after the cursor stored under ``name`` (without
        one: from the start, or from the next event with ``stream_from_latest``). Pushed,
        so ``poll_interval`` is ignored."""
        self._check_open()
        ref = reference(name)
        where = await self._conn.ensure(topic)
        conn = self._conn
        lane = conn.new_lane()
        client = await conn.client(lane=lane)
        receiver = RabbitEventReceiver(self, where, name)
        reader = receiver._reader = CursorReader(
            client,
            connect=functools.partial(conn.client, lane=lane),
            release=functools.partial(conn.release, lane),
            stream=where.stream,
            cursors=where.cursors,
            reference=ref,
            decode=receiver._arrived,
            what=f"receiver {name!r} of topic {topic!r}",
            identity=_identity,
        )
        try:
            await reader.start(from_latest=stream_from_latest)
            self._check_open()  # closed meanwhile: the receiver would be nobody's to close
        except BaseException:
            await reader.close()
            raise
        if reader.cursor is not None:
            receiver._own_seen = self._resume.get((where.stream, name), 0)
        elif stream_from_latest:
            receiver._own_seen = self._sent.get(where.stream, 0)
        self._receivers.add(receiver)
        return receiver

    async def tail(self, topic: str) -> RabbitTail:
        """A tail of ``topic`` from its current end (``TailsTopics``; ``_tail``)."""
        self._check_open()
        self._conn.topic(topic)  # a name RabbitMQ cannot take fails here
        return await self._tails.open(topic)

    async def close(self) -> None:
        """Close every receiver and tail still open (storing the receivers' cursors), and
        the connection if the streamer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._tails.close()
        for receiver in list(self._receivers):
            await receiver.close()
        if self._owns:
            await self._conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("the RabbitMQ event streamer is closed")

    def _forget(self, receiver: RabbitEventReceiver) -> None:
        self._receivers.discard(receiver)

    async def _send(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        where = self._conn.topic(topic)
        first = self._sent.get(where.stream, 0) + 1
        self._sent[where.stream] = first + len(events) - 1  # pending at once, here
        token = self._token
        messages = [encode(event, token, first + i) for i, event in enumerate(events)]
        for attempt in (1, 2):
            where = await self._conn.ensure(topic)
            client = await self._conn.client(publishing=True)
            try:
                await client.publish(where.stream, messages)
                return
            except StreamMissing:
                self._conn.forget(topic)  # deleted behind our back: made again, sent once more
                if attempt == 2:
                    raise
            except ValueError as exc:  # an event larger than a frame
                raise AdapterError(f"cannot send to {topic!r}: {exc}") from None


def _identity(decoded: Decoded) -> str | None:
    """An engine event's identity (one per record write), else ``None``."""
    headers = decoded.event.headers
    run_id = headers.get(Header.RUN_ID)
    version = headers.get(Header.RECORD_VERSION)
    return None if run_id is None or version is None else f"{run_id}\0{version}"


class RabbitEventSender(EventSenderBase):
    """Publishes to one topic of a ``RabbitEventStreamer`` (with confirms)."""

    def __init__(self, streamer: RabbitEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        await self._streamer._send(self.topic, events)


class RabbitEventReceiver:
    """Reads one topic of a ``RabbitEventStreamer`` under a name (its offset reference)."""

    _reader: CursorReader[Decoded]

    def __init__(self, streamer: RabbitEventStreamer, topic: Topic, name: str) -> None:
        """Made by ``RabbitEventStreamer.new_receiver``, which gives it its reader."""
        self._streamer = streamer
        self.topic: str = topic.name
        self.name: str = name
        self._stream = topic.stream
        self._own_seen = 0  # the highest count of this streamer's events received
        self._own: deque[tuple[int, int]] = deque()  # (offset, count) of those, in order

    def _arrived(self, offset: int, data: bytes | None, created_at: datetime) -> Decoded:
        decoded = decode(data, offset, created_at)
        if decoded.origin == self._streamer._token:
            self._own_seen = max(self._own_seen, decoded.seq)
            self._own.append((offset, decoded.seq))
        return decoded

    def pending(self) -> int:
        """Events received and not handed out, plus this streamer's events sent to the
        topic and not received yet (``ReportsPending``; see the module docstring)."""
        sent = self._streamer._sent.get(self._stream, 0)
        return self._reader.buffered + max(0, sent - self._own_seen)

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        """Wait for events; up to ``max_events`` of them (cancellable; nothing is lost)."""
        return [decoded.event for _, decoded in await self._reader.take(max_events)]

    async def ack(self, event: Event) -> None:
        self._reader.ack(event.id)
        cursor = self._reader.cursor
        own = self._own
        while own and cursor is not None and own[0][0] <= cursor:
            own.popleft()

    async def close(self) -> None:
        """Store the cursor and stop receiving. Idempotent."""
        self._streamer._forget(self)
        await self._reader.close()
        # What comes again to the next receiver of the name here: all after the cursor.
        again = self._own[0][1] - 1 if self._own else self._own_seen
        self._streamer._resume[(self._stream, self.name)] = again
