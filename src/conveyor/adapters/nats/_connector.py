"""``NatsConnector``: messages of an outside JetStream stream as connector events.

The stream belongs to someone else: the connector never creates or changes it. Each
consumer name (the engine passes the connector shard's role) is a durable pull consumer of
the stream, ``P_cn=<token of the name>`` (see ``_names``), filtered to ``subject`` if
given. Its cursor is the consumer's acknowledgement floor: acknowledgements advance it
only over an unbroken run (``AckAll`` is sent for the last event of the run), and
``close`` NAKs the rest, so a consumer opened again under the name starts right after the
run, as the connector contract says. It is woken by a core subscription to the stream's
subjects (the messages themselves ring; see ``_pull``).

How a message maps to a ``ConnectorEvent`` (``message_event``, or pass ``mapper``):

- ``id``: the ``Nats-Msg-Id`` header (what a producer sets for JetStream's de-duplication),
  else the message's stream sequence in decimal;
- ``foreign_id``: the ``Foreign-Id`` header, else the payload as UTF-8 text;
- ``type``: the ``Event-Type`` header, else ``""``;
- ``headers``: every other header, except the server's own (``Nats-`` names), the first
  value of each;
- ``created_at``: the time the stream stored the message (the server's clock).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ..._connector import ConnectorEvent
from ..._errors import AdapterError
from ..._kit._acks import AckTracker, NotHandedOut
from ._connection import NatsConnection
from ._errors import translate
from ._names import escape
from ._pull import PullReader

__all__ = [
    "EVENT_TYPE_HEADER",
    "FOREIGN_ID_HEADER",
    "Mapper",
    "MessageMetadata",
    "MessageSequence",
    "NatsConnector",
    "NatsConnectorConsumer",
    "NatsMessage",
    "message_event",
]

log = logging.getLogger("conveyor.adapters.nats")

FOREIGN_ID_HEADER: Final = "Foreign-Id"
EVENT_TYPE_HEADER: Final = "Event-Type"
_MSG_ID: Final = "Nats-Msg-Id"


class MessageSequence(Protocol):
    """Where a message is in its stream."""

    @property
    def stream(self) -> int: ...


class MessageMetadata(Protocol):
    """What JetStream says about a message it delivered."""

    @property
    def sequence(self) -> MessageSequence: ...

    @property
    def timestamp(self) -> datetime: ...

    @property
    def num_pending(self) -> int: ...


class NatsMessage(Protocol):
    """A JetStream message as a mapper sees it (nats-py's ``Msg``)."""

    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> dict[str, str] | None: ...

    @property
    def metadata(self) -> MessageMetadata: ...


Mapper = Callable[[NatsMessage], ConnectorEvent]
"""Makes the connector event of a message (``message_event`` by default)."""


def message_event(msg: NatsMessage) -> ConnectorEvent:
    """The connector event of a JetStream message (the module docstring's mapping)."""
    meta = msg.metadata
    headers = msg.headers or {}
    foreign_id = headers.get(FOREIGN_ID_HEADER)
    if foreign_id is None:
        foreign_id = msg.data.decode("utf-8", "replace")
    extra = {
        key: value
        for key, value in headers.items()
        if key not in (FOREIGN_ID_HEADER, EVENT_TYPE_HEADER) and not key.startswith("Nats-")
    }
    return ConnectorEvent(
        id=headers.get(_MSG_ID) or str(meta.sequence.stream),
        foreign_id=foreign_id,
        type=headers.get(EVENT_TYPE_HEADER, ""),
        headers=extra,
        created_at=meta.timestamp,
    )


class NatsConnector:
    """``ConnectorConstructor`` over the JetStream stream ``stream`` (see the module).

    ``NatsConnector("nats://host:4222", stream="ORDERS", subject="orders.created")`` opens
    (on first use) and owns a connection; pass a ``NatsConnection`` to share one.
    """

    def __init__(
        self,
        connection: NatsConnection | str,
        *,
        stream: str,
        subject: str | None = None,
        mapper: Mapper | None = None,
        deliver_new: bool = False,
        **options: Any,
    ) -> None:
        if isinstance(connection, str):
            self._conn = NatsConnection(connection, **options)
            self._owns = True
        else:
            if options:
                raise TypeError("options go to the NatsConnection, not the connector")
            self._conn = connection
            self._owns = False
        self.stream: str = stream
        self.subject: str | None = subject
        self._mapper: Mapper = mapper or message_event
        self._deliver_new = deliver_new
        self._consumers: set[NatsConnectorConsumer] = set()
        self._closed = False

    async def make(self, name: str) -> NatsConnectorConsumer:
        """A consumer reading from the cursor of ``name`` (made if missing: from the start
        of the stream, or from its end with ``deliver_new``)."""
        if self._closed:
            raise AdapterError("the NATS connector is closed")
        _, js = await self._conn.client()
        durable = f"{self._conn.options.prefix}_cn={escape(name)}"
        what = f"opening connector consumer {name!r} on stream {self.stream!r}"
        try:
            info = await js.stream_info(self.stream)
            subjects = [self.subject] if self.subject else list(info.config.subjects or [])
            try:
                known = await js.consumer_info(self.stream, durable)
                waiting = (known.num_pending or 0) + (known.num_ack_pending or 0)
                again = known.num_ack_pending or 0
                delivered = known.delivered.stream_seq if known.delivered else 0
            except nats.js.errors.NotFoundError:
                waiting = int(info.state.messages)
                again = delivered = 0
                config = ConsumerConfig(
                    durable_name=durable,
                    description=f"conveyor connector consumer {name!r}"[:4000],
                    ack_policy=AckPolicy.ALL,
                    deliver_policy=DeliverPolicy.NEW if self._deliver_new else DeliverPolicy.ALL,
                    ack_wait=self._conn.options.ack_wait,
                    max_deliver=-1,
                    filter_subject=self.subject,
                    max_ack_pending=self._conn.options.max_ack_pending,
                )
                try:
                    await js.add_consumer(self.stream, config)
                except nats.js.errors.APIError as exc:
                    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
                        raise
                    await js.consumer_info(self.stream, durable)  # made meanwhile
        except nats.js.errors.NotFoundError as exc:
            raise AdapterError(f"{what}: no stream {self.stream!r} on the server") from exc
        except Exception as exc:
            raise translate(exc, what, self._conn.url) from exc
        if not subjects:
            raise AdapterError(f"{what}: the stream has no subjects")
        consumer = NatsConnectorConsumer(self, name, durable, subjects[0], waiting)
        consumer._again, consumer._opened_at = again, delivered
        await consumer._reader.start()
        await consumer._ring_on(subjects[1:])
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Close the consumers still open, and the connection if this opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        if self._owns:
            await self._conn.close()


class NatsConnectorConsumer:
    """Reads an outside stream under a consumer name (a ``ConnectorConsumer``)."""

    def __init__(
        self, connector: NatsConnector, name: str, durable: str, bell: str, waiting: int
    ) -> None:
        self._connector = connector
        self._waiting = waiting  # on the server, not delivered to us, as last heard
        self._again = 0  # left unacknowledged by earlier consumers of the name
        self._opened_at = 0
        self.name: str = name
        self._held: dict[int, Msg] = {}  # handed out, cursor not past them: seq -> message
        self._reader = PullReader(
            connector._conn,
            connector.stream,
            durable,
            bell,
            expecting=lambda: self._again > 0,
            held=self._held.__len__,
        )
        self._bell_subs: list[Any] = []
        self._acks: AckTracker | None = None  # made at the first message (its floor)
        self._handed_high = 0
        self._events: dict[int, int] = {}  # id(event) -> seq
        self._closed = False

    async def _ring_on(self, subjects: list[str]) -> None:
        """Doorbells for a stream of several subjects (the reader rings on the first)."""
        if not subjects:
            return
        nc, _ = await self._connector._conn.client()

        async def ring(msg: Msg) -> None:
            self._reader.ring()

        for subject in subjects:
            self._bell_subs.append(await nc.subscribe(subject, cb=ring))

    def pending(self) -> int:
        """A hint (``ReportsPending``): events received and not handed out, those the
        server counted as left when it last delivered or at the opening, and one more
        while a doorbell (an outside publish) has not been answered by a pull."""
        if self._closed:
            return 0
        return self._reader.buffered + self._waiting + (1 if self._reader.dirty else 0)

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        limit = max(1, max_events)
        while True:
            if self._closed:
                raise AdapterError(f"connector consumer {self.name!r} is closed")
            events: list[ConnectorEvent] = []
            for msg in await self._reader.take(limit):
                try:
                    seq = msg.metadata.sequence.stream
                    self._waiting = msg.metadata.num_pending
                except Exception:
                    continue
                if seq <= self._handed_high:
                    continue  # delivered again while ours: handed out once
                if seq <= self._opened_at:
                    self._again = max(0, self._again - 1)
                if self._acks is None:
                    self._acks = AckTracker(seq - 1)
                self._acks.hand_out((seq,))
                self._handed_high = seq
                self._held[seq] = msg
                event = self._connector._mapper(msg)
                self._events[id(event)] = seq
                events.append(event)
            if events:
                return events

    async def ack(self, event: ConnectorEvent) -> None:
        seq = self._events.pop(id(event), None)
        if seq is None or self._acks is None:
            raise AdapterError(f"event {event.id!r} was not handed out by {self.name!r}")
        try:
            moved = self._acks.ack(seq)
        except NotHandedOut:
            raise AdapterError(f"event {event.id!r} was not handed out by {self.name!r}") from None
        if not moved:
            return
        committed = self._acks.committed
        msg = self._held.get(committed)
        for passed in [s for s in self._held if s <= committed]:
            del self._held[passed]
        if msg is not None:
            try:
                await msg.ack()  # AckAll: every event up to it
            except Exception as exc:
                raise translate(exc, "acknowledging", self._connector._conn.url) from exc
        self._reader.made_room()

    async def close(self) -> None:
        """Stop reading; NAK what is past the cursor (it comes again at once, in order, to
        the next consumer of the name). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._connector._consumers.discard(self)
        for sub in self._bell_subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        leftover = await self._reader.close()
        held = sorted(self._held.items())
        self._held.clear()
        self._events.clear()
        for msg in [m for _, m in held] + leftover:
            try:
                await msg.nak()
            except Exception as exc:  # they come again after ack_wait
                log.debug("cannot NAK a connector event on close: %r", exc)
                break
        if held or leftover:
            with contextlib.suppress(Exception):
                nc, _ = await self._connector._conn.client()
                await nc.flush(timeout=2)  # the server has read the NAKs
