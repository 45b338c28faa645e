"""``NatsEventStreamer``: conveyor's topics on NATS JetStream.

Layout: a stream per topic (``P_ev=<topic token>``, one subject ``P.ev.<topic token>``,
see ``_names``), not a stream per workflow with a subject per topic. An event's ID is its
stream sequence, and the engine shards a topic's events by ``id % parallel_count``: in a
stream shared by a workflow's topics one topic's sequences are whatever the interleaving
left it (a relay that sends a run's events to two topics in turn gives one of them only
odd sequences, so with two shards one shard gets them all), while a stream of its own
numbers a topic's events 1, 2, 3, ... and the shards split them evenly
(``tests/adapters/test_nats_streamer.py`` measures both). Besides, a topic name does not
always name its workflow (``a-b-1`` is workflow ``a-b`` or a topic outside the engine).

Retention is limits-based (``max_age``, 7 days by default): events stay for every
reader, acknowledged or not, so a new receiver name reads every retained event from the
start (deliver policy all), or, with ``stream_from_latest``, the events published after
its consumer was made in ``new_receiver`` (deliver policy new).

Receivers. A receiver name is a durable pull consumer of the topic's stream (explicit
acks, ``ack_wait``), so delivery is ``Delivery.PER_EVENT``: each event is acknowledged on
its own, and a receiver opened again under the name is handed exactly what was not
acknowledged (possibly after events with higher IDs). A live receiver keeps what it holds
in progress (``+WPI`` every ``ack_wait / 3``), so a slow step is not delivered twice;
``close`` NAKs what it holds (handed out or not) after the server stopped delivering to
it, so those events come again at once instead of after ``ack_wait``. A receiver that
dies without closing leaves its events to come again after ``ack_wait``.

Sending publishes each event and waits for the server's acknowledgement (a batch is
published at once, then awaited; see ``_publish``): a publish the server refuses fails at
once, one lost with the connection fails at the reconnect. Engine events carry
``Nats-Msg-Id`` (a hash of run ID and record version), so a copy sent again within
``duplicate_window`` (the relay after a failed batch) is dropped by the server.

Tails (``tail``) share one ephemeral ordered push consumer per tailed topic in this
process; see ``_tail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from ..._errors import AdapterError, AdapterUnavailable
from ..._event import Event
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from ._codec import EXPECTED_STREAM, MSG_ID, decode, encode, message_id, position
from ._connection import NatsConnection, Topic
from ._errors import checkpoint, translate
from ._names import consumer_name
from ._publish import Publisher
from ._pull import PullReader
from ._tail import NatsTail, TailHubs
from ._wire import ACK, header_block, pub

__all__ = ["NatsEventReceiver", "NatsEventSender", "NatsEventStreamer"]

log = logging.getLogger("conveyor.adapters.nats")

_MSG_ID = MSG_ID.encode()


class NatsEventStreamer:
    """``EventStreamer`` on NATS JetStream (see the module docstring).

    ``NatsEventStreamer("nats://127.0.0.1:4222?prefix=app")`` opens (on first use) and
    owns a connection; ``NatsEventStreamer(connection)`` shares one it does not close.
    """

    delivery: ClassVar[Delivery] = Delivery.PER_EVENT

    def __init__(self, connection: NatsConnection | str, **options: Any) -> None:
        if isinstance(connection, str):
            self._conn = NatsConnection(connection, **options)
            self._owns = True
        else:
            if options:
                raise TypeError("options go to the NatsConnection, not the streamer")
            self._conn = connection
            self._owns = False
        self._known_last: dict[str, int] = {}
        self._receivers: set[NatsEventReceiver] = set()
        self._tails = TailHubs(self._conn)
        self._keeper: asyncio.Task[None] | None = None
        self._publisher = Publisher(self._conn)
        self._bell = uuid.uuid4().hex.encode()  # the doorbells this streamer rings
        self._conn.on_reconnect(self._on_reconnect)
        self._closed = False

    @property
    def connection(self) -> NatsConnection:
        """The connection the streamer uses."""
        return self._conn

    async def new_sender(self, topic: str) -> NatsEventSender:
        self._check_open()
        return NatsEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> NatsEventReceiver:
        """A receiver reading ``topic`` under ``name`` (its durable consumer, made here if
        missing: from the start, or from now with ``stream_from_latest``). Pushed, so
        ``poll_interval`` is ignored."""
        self._check_open()
        where = await self._conn.ensure(topic)
        durable = consumer_name(name)
        info = await self._consumer(where, durable, name, stream_from_latest)
        checkpoint()
        receiver = NatsEventReceiver(
            self,
            where,
            name,
            delivered=info.delivered.stream_seq if info.delivered else 0,
            undelivered=info.num_pending or 0,
            unacknowledged=info.num_ack_pending or 0,
        )
        await receiver._reader.start()
        self._receivers.add(receiver)
        self._start_keeper()
        return receiver

    async def _consumer(
        self, where: Topic, durable: str, name: str, from_latest: bool
    ) -> ConsumerInfo:
        _, js = await self._conn.client()
        options = self._conn.options
        what = f"opening receiver {name!r} of topic {where.name!r}"
        try:
            try:
                info: ConsumerInfo = await js.consumer_info(where.stream, durable)
                return info
            except nats.js.errors.NotFoundError:
                pass
            config = ConsumerConfig(
                durable_name=durable,
                description=f"conveyor receiver {name!r}"[:4000],
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW if from_latest else DeliverPolicy.ALL,
                ack_wait=options.ack_wait,
                max_deliver=-1,
                filter_subject=where.subject,
                max_ack_pending=options.max_ack_pending,
            )
            try:
                info = await js.add_consumer(where.stream, config)
            except nats.js.errors.APIError as exc:
                if isinstance(exc, nats.js.errors.ServiceUnavailableError):
                    raise
                # Made meanwhile by another process (perhaps with the other deliver
                # policy: the first one made wins, as a stored cursor does).
                info = await js.consumer_info(where.stream, durable)
            return info
        except Exception as exc:
            raise translate(exc, what, self._conn.url) from exc

    async def tail(self, topic: str) -> NatsTail:
        """A tail of ``topic`` from its last event now (``TailsTopics``); see ``_tail``."""
        self._check_open()
        where = await self._conn.ensure(topic)
        return await self._tails.open(where)

    async def close(self) -> None:
        """Close every receiver and tail still open (NAKing what they hold), and the
        connection if the streamer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for receiver in list(self._receivers):
            await receiver.close()
        await self._tails.close()
        await self._publisher.close()
        self._conn.remove_reconnect_hook(self._on_reconnect)
        if self._owns:
            await self._conn.close()

    async def _on_reconnect(self) -> None:
        """Fail the publishes still waiting for their acknowledgement: the request or its
        answer may have been lost with the old connection, and waiting for
        ``request_timeout`` would only delay the caller's retry (which the server drops
        as a duplicate if the first copy was stored, for engine events)."""
        self._publisher.fail_waiting()

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("the NATS event streamer is closed")

    # ------------------------------------------------------------------ bookkeeping

    def _saw(self, stream: str, last: int) -> None:
        """Events up to stream sequence ``last`` exist (a publish ack, a message)."""
        if last > self._known_last.get(stream, 0):
            self._known_last[stream] = last

    def _forget(self, receiver: NatsEventReceiver) -> None:
        self._receivers.discard(receiver)

    def _start_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(
                self._keep_in_progress(), name="conveyor-nats-in-progress"
            )

    async def _keep_in_progress(self) -> None:
        """Every ``ack_wait / 3``: tell the server that what receivers hold is in progress."""
        period = self._conn.options.ack_wait / 3
        while True:
            await asyncio.sleep(period)
            for receiver in list(self._receivers):
                for msg in receiver._holding():
                    try:
                        await msg.in_progress()
                    except Exception as exc:  # reconnecting: the next round tries again
                        log.debug("cannot keep an event in progress: %r", exc)
                        break

    # ------------------------------------------------------------------ sending

    async def _send(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        where = await self._conn.ensure(topic)
        timeout = self._conn.options.request_timeout
        what = f"sending to {topic!r}"
        stream = where.stream
        future: asyncio.Future[list[int]] | None = None
        try:
            plain = header_block({EXPECTED_STREAM: stream})
            open_block = plain[:-2]  # the block less its closing empty line
            messages: list[tuple[bytes, bytes]] = []
            for event in events:
                msg_id = message_id(event.headers)
                if msg_id is None:
                    headers = plain
                else:  # the same block, with the message's ID
                    headers = b"%s%s: %s\r\n\r\n" % (open_block, _MSG_ID, msg_id.encode())
                messages.append((encode(event), headers))
            future = await self._publisher.publish(where.subject.encode(), messages)
            async with asyncio.timeout(timeout):
                seqs = await future
        except TimeoutError as exc:
            raise AdapterUnavailable(
                f"NATS unavailable while {what}: no acknowledgement within {timeout}s"
            ) from exc
        except nats.js.errors.NoStreamResponseError as exc:
            self._conn.forget(topic)  # deleted behind our back: made again next time
            raise translate(exc, what, self._conn.url) from exc
        except Exception as exc:
            raise translate(exc, what, self._conn.url) from exc
        finally:
            if future is not None:
                if not future.done():
                    future.cancel()
                if future.cancelled() or future.exception() is not None:
                    self._publisher.discard()  # what the batch still waits for
        self._saw(where.stream, max(seqs))
        await self._ring(where)
        checkpoint()

    async def _ring(self, where: Topic) -> None:
        """Wake the topic's receivers, here and elsewhere (they pull at once); the doorbell
        says which streamer rang and the last sequence it knows of (``_heard``)."""
        for receiver in self._receivers:
            if receiver.topic == where.name:
                receiver._reader.ring()
        try:
            nc, _ = await self._conn.client()
            last = self._known_last.get(where.stream, 0)
            ring = b"%s %d" % (self._bell, last)  # ours ignore it
            nc.send(pub(where.bell.encode(), ring), len(ring))
        except Exception as exc:  # receivers elsewhere look again by themselves
            log.debug("cannot ring the doorbell of %r: %r", where.name, exc)


class NatsEventSender(EventSenderBase):
    """Publishes to one topic of a ``NatsEventStreamer``."""

    def __init__(self, streamer: NatsEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        await self._streamer._send(self.topic, events)


class NatsEventReceiver:
    """Reads one topic of a ``NatsEventStreamer`` under a name (its durable consumer)."""

    def __init__(
        self,
        streamer: NatsEventStreamer,
        topic: Topic,
        name: str,
        *,
        delivered: int,
        undelivered: int,
        unacknowledged: int,
    ) -> None:
        """Made by ``NatsEventStreamer.new_receiver`` from its consumer's state: the last
        stream sequence ``delivered``, how many events are ``undelivered`` and how many
        ``unacknowledged`` (by earlier receivers of the name)."""
        self._streamer = streamer
        self.topic: str = topic.name
        self.name: str = name
        self._stream = topic.stream
        self._where = topic
        self._held: dict[int, Msg] = {}  # handed out, not acknowledged: seq -> message
        self._reader = PullReader(
            streamer._conn,
            topic.stream,
            consumer_name(name),
            topic.bell,
            expecting=self._expecting,
            heard=self._heard,
            headers=False,
            held=self._held.__len__,
        )
        self._handed_high = 0
        self._seen_high = delivered  # every first delivery up to here has come (or expired)
        self._opened_at = delivered
        self._redeliveries = unacknowledged  # left by earlier receivers of the name
        self._redelivered: set[int] = set()
        streamer._saw(self._stream, delivered + undelivered)
        self._closed = False

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        """Wait for events; up to ``max_events`` of them (cancellable; nothing is lost)."""
        limit = max(1, max_events)
        while True:
            if self._closed:
                raise AdapterError(f"receiver {self.name!r} is closed")
            events: list[Event] = []
            for msg in await self._reader.take(limit):
                event = self._take(msg)
                if event is not None:
                    events.append(event)
            if events:
                return events

    def _take(self, msg: Msg) -> Event | None:
        try:
            seq, _, pending, stored = position(msg)
        except Exception:  # not a JetStream message: nothing to hand out
            return None
        if seq in self._held:
            return None  # delivered again while we hold it (ack_wait passed): handed out once
        if seq <= self._opened_at and seq not in self._redelivered:
            self._redelivered.add(seq)  # left unacknowledged by an earlier receiver
            self._redeliveries = max(0, self._redeliveries - 1)
        self._seen_high = max(self._seen_high, seq)
        self._streamer._saw(self._stream, seq + pending)
        self._held[seq] = msg
        self._handed_high = max(self._handed_high, seq)
        return decode(msg, seq, stored)

    def _heard(self, payload: bytes) -> bool:
        """A doorbell of the topic: ``<streamer token> <last stream sequence>`` from a
        streamer (anything from others). This streamer's own is ignored (it woke its
        receivers already); another's tells which events exist (``pending``,
        ``_expecting``)."""
        token, _, last = payload.partition(b" ")
        if token == self._streamer._bell:
            return False
        if last.isdigit():
            self._streamer._saw(self._stream, int(last))
        return True

    def _expecting(self) -> bool:
        """Whether events this receiver has not been handed yet are known to exist: left
        unacknowledged by earlier receivers of the name, or sent up to a sequence beyond
        the last one delivered (the pull that the sender's doorbell made may have come
        too soon to find them: see ``_pull``)."""
        if self._redeliveries > 0:
            return True
        return self._streamer._known_last.get(self._stream, 0) > self._seen_high

    def pending(self) -> int:
        """How many events this process knows this receiver has not handed out yet
        (``ReportsPending``): those it received and holds, those up to the last sequence
        this process saw (its own sends, other messages' pending counts, other processes'
        doorbells) and not yet delivered, and those earlier receivers of the name left
        unacknowledged."""
        if self._closed:
            return 0
        known = self._streamer._known_last.get(self._stream, 0)
        return self._reader.buffered + max(0, known - self._seen_high) + self._redeliveries

    async def ack(self, event: Event) -> None:
        msg = self._held.pop(event.id, None)
        if msg is None:
            if event.id <= self._handed_high:
                return  # acknowledged already
            raise AdapterError(f"event {event.id} was not handed out by receiver {self.name!r}")
        try:
            nc, _ = await self._streamer._conn.client()
            nc.send(pub(msg.reply.encode(), ACK), len(ACK))
        except Exception as exc:
            self._held[event.id] = msg  # not acknowledged: still ours
            raise translate(
                exc, f"acknowledging event {event.id}", self._streamer._conn.url
            ) from exc
        self._reader.made_room()

    def _holding(self) -> list[Msg]:
        return [*self._held.values(), *self._reader.buffered_messages()]

    async def close(self) -> None:
        """Stop receiving; NAK every event held (handed out or not), so that it comes again
        at once to the next receiver of the name. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._streamer._forget(self)
        leftover = await self._reader.close()
        held = [*self._held.values(), *leftover]
        self._held.clear()
        for msg in sorted(held, key=_stream_seq):
            try:
                await msg.nak()
            except Exception as exc:  # they come again after ack_wait
                log.debug("cannot NAK event on close: %r", exc)
                break
        if held:
            with contextlib.suppress(Exception):
                nc, _ = await self._streamer._conn.client()
                await nc.flush(timeout=2)  # the server has read the NAKs
            await self._streamer._ring(self._where)  # they come again: at once, anywhere


def _stream_seq(msg: Msg) -> int:
    try:
        return msg.metadata.sequence.stream
    except Exception:
        return 0
