"""``RabbitConnector``: messages of an outside RabbitMQ stream as connector events.

The stream belongs to someone else: the connector never creates, changes or deletes it.
Each consumer name (the engine passes the connector shard's role) is an offset reference
in that stream, the way RabbitMQ's own stream clients keep consumer offsets: its cursor
moves over the unbroken run of acknowledged messages (``_reading``), so a consumer opened
again under the name starts right after the run, as the connector contract says. A new
name starts at the stream's first retained message.

Pending (``ReportsPending``): a consumer counts the messages it holds (handed out and
not acknowledged, or received and not handed out) and one more until a ``recv`` has found
the stream's end, so ``run_until_idle`` sees a workflow with the connector go idle only
once its consumers read the stream to its end (``_reading``).

How a message maps to a ``ConnectorEvent`` (``message_event``, or pass ``mapper``). An
AMQP 1.0 message (what RabbitMQ's stream clients write; ``_amqp``):

- ``id``: ``properties.message-id``, else the message's offset in decimal;
- ``foreign_id``: the ``Foreign-Id`` application property, else the body as UTF-8 text;
- ``type``: the ``Event-Type`` application property, else ``properties.subject``, else
  ``""``;
- ``headers``: every other application property, as text;
- ``created_at``: ``properties.creation-time``, else the chunk's time (the node's clock).

Bytes that are not an AMQP 1.0 message give the offset as ``id`` and the bytes, as UTF-8
text, as ``foreign_id``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ..._connector import ConnectorEvent
from ..._errors import AdapterError
from ._amqp import decode_message
from ._connection import RabbitConnection
from ._names import reference
from ._reading import CursorReader

__all__ = [
    "EVENT_TYPE_PROPERTY",
    "FOREIGN_ID_PROPERTY",
    "Mapper",
    "RabbitConnector",
    "RabbitConnectorConsumer",
    "StreamMessage",
    "message_event",
]

FOREIGN_ID_PROPERTY: Final = "Foreign-Id"
EVENT_TYPE_PROPERTY: Final = "Event-Type"


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A message of the outside stream as a mapper sees it."""

    offset: int
    data: bytes
    """The message as written (an AMQP 1.0 message, for RabbitMQ's stream clients)."""
    stored_at: datetime
    """When the node stored its chunk (the node's clock)."""


Mapper = Callable[[StreamMessage], ConnectorEvent]
"""Makes the connector event of a message (``message_event`` by default)."""


def message_event(message: StreamMessage) -> ConnectorEvent:
    """The connector event of a stream message (the module docstring's mapping)."""
    try:
        amqp = decode_message(message.data)
    except ValueError:
        return ConnectorEvent(
            id=str(message.offset),
            foreign_id=message.data.decode("utf-8", "replace"),
            created_at=message.stored_at,
        )
    properties = amqp.application_properties
    foreign_id = properties.get(FOREIGN_ID_PROPERTY)
    if foreign_id is None:
        foreign_id = amqp.body.decode("utf-8", "replace")
    kind = properties.get(EVENT_TYPE_PROPERTY)
    if kind is None:
        kind = amqp.subject or ""
    return ConnectorEvent(
        id=amqp.message_id if amqp.message_id is not None else str(message.offset),
        foreign_id=foreign_id,
        type=kind,
        headers={
            key: value
            for key, value in properties.items()
            if key not in (FOREIGN_ID_PROPERTY, EVENT_TYPE_PROPERTY)
        },
        created_at=amqp.creation_time or message.stored_at,
    )


class RabbitConnector:
    """``ConnectorConstructor`` for an outside RabbitMQ stream (see the module docstring).

    ``RabbitConnector("rabbitmq-stream://…", stream="orders")`` opens (on first use) and
    owns a ``RabbitConnection`` (each consumer reads on a connection of its own from it);
    ``RabbitConnector(connection, stream=…)`` shares one.
    """

    def __init__(
        self,
        connection: RabbitConnection | str,
        *,
        stream: str,
        mapper: Mapper | None = None,
        **options: Any,
    ) -> None:
        if isinstance(connection, str):
            self._conn = RabbitConnection(connection, **options)
            self._owns = True
        else:
            if options:
                raise TypeError("options go to the RabbitConnection, not the connector")
            self._conn = connection
            self._owns = False
        if not isinstance(stream, str) or not stream:
            raise AdapterError("RabbitConnector needs the name of the stream to read")
        self.stream = stream
        self._mapper = mapper or message_event
        self._consumers: set[RabbitConnectorConsumer] = set()
        self._closed = False

    async def make(self, name: str) -> RabbitConnectorConsumer:
        """A consumer reading the stream after the offset stored under ``name``."""
        if self._closed:
            raise AdapterError("the RabbitMQ connector is closed")
        ref = reference(name)
        conn = self._conn
        lane = conn.new_lane()
        client = await conn.client(lane=lane)
        mapper = self._mapper

        def decode(offset: int, data: bytes | None, stored_at: datetime) -> ConnectorEvent:
            return mapper(StreamMessage(offset, data or b"", stored_at))

        reader = CursorReader(
            client,
            connect=functools.partial(conn.client, lane=lane),
            release=functools.partial(conn.release, lane),
            stream=self.stream,
            cursors=self.stream,
            reference=ref,
            decode=decode,
            what=f"connector consumer {name!r} of stream {self.stream!r}",
            find_end=True,
        )
        try:
            await reader.start(from_latest=False)
            if self._closed:  # closed meanwhile: the consumer would be nobody's to close
                raise AdapterError("the RabbitMQ connector is closed")
        except BaseException:
            await reader.close()
            raise
        consumer = RabbitConnectorConsumer(self)
        consumer._reader = reader
        self._consumers.add(consumer)
        return consumer

    def _forget(self, consumer: RabbitConnectorConsumer) -> None:
        self._consumers.discard(consumer)

    async def close(self) -> None:
        """Close the consumers still open (storing their cursors), and the connection if
        the connector opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        if self._owns:
            await self._conn.close()


class RabbitConnectorConsumer:
    """Reads the outside stream under one name (``ConnectorConsumer``)."""

    _reader: CursorReader[ConnectorEvent]

    def __init__(self, connector: RabbitConnector) -> None:
        """Made by ``RabbitConnector.make``, which gives it its reader."""
        self._connector = connector
        self._offsets: dict[int, int] = {}  # id() of a handed-out event -> its offset
        self._closed = False

    def pending(self) -> int:
        """A hint (``ReportsPending``): messages handed out and not acknowledged, received
        and not handed out, and one more until a ``recv`` found the stream's end (the node
        had nothing more to send; ``_reading``), so a workflow is idle only once its
        connector has read the stream to its end. Messages written after that count once
        they arrive (pushed: within a round trip)."""
        if self._closed:
            return 0
        reader = self._reader
        return len(self._offsets) + reader.buffered + (0 if reader.caught_up else 1)

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        """Wait for events; up to ``max_events`` of them (cancellable; nothing is lost)."""
        taken = await self._reader.take(max_events)
        for offset, event in taken:
            self._offsets[id(event)] = offset
        return [event for _, event in taken]

    async def ack(self, event: ConnectorEvent) -> None:
        offset = self._offsets.pop(id(event), None)
        if offset is None:
            raise AdapterError(f"event {event.id!r} was not handed out by this consumer")
        self._reader.ack(offset)

    async def close(self) -> None:
        """Store the cursor and stop reading. Idempotent."""
        self._closed = True
        self._connector._forget(self)
        self._offsets.clear()
        await self._reader.close()
