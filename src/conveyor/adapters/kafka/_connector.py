"""``KafkaConnector``: the messages of any Kafka topic as connector events.

The topic belongs to someone else: the connector never creates or changes it, and its name
is used as given (no escaping). Each consumer name (the engine passes the connector shard's
role) keeps committed offsets under that name as its group ID; a consumer reads every
partition (the engine shards connector events by a hash of their ID), each from its
committed offset, advanced only over an unbroken run of acknowledgements
(``PartitionReader``). Order holds per partition (``ReadsPartitions``).

How a message maps to a ``ConnectorEvent`` (``message_event``, or pass ``mapper``):

- ``id``: the ``event-id`` header, else ``"<partition>/<offset>"`` (unique in the topic);
- ``foreign_id``: the message key as UTF-8 text, else the value as UTF-8 text;
- ``type``: the ``event-type`` header, else ``""``;
- ``headers``: every other header, as UTF-8 text (the last value of a repeated name);
- ``created_at``: the message's timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from confluent_kafka import Message

from ..._connector import ConnectorEvent
from ..._errors import AdapterError
from ._client import KafkaClient
from ._options import split_url
from ._reader import PartitionReader, position

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "KafkaConnector",
    "KafkaConnectorConsumer",
    "Mapper",
    "message_event",
]

EVENT_ID_HEADER: Final = "event-id"
EVENT_TYPE_HEADER: Final = "event-type"

Mapper = Callable[[Message], ConnectorEvent]
"""Makes the connector event of a Kafka message (``message_event`` by default)."""


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def message_event(message: Message) -> ConnectorEvent:
    """The connector event of a Kafka message (the module docstring's mapping)."""
    partition, offset = position(message)
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = {key: _text(value) for key, value in pairs}
    event_id = headers.pop(EVENT_ID_HEADER, None) or f"{partition}/{offset}"
    event_type = headers.pop(EVENT_TYPE_HEADER, "")
    key = message.key()
    _kind, stamp = message.timestamp()
    return ConnectorEvent(
        id=event_id,
        foreign_id=_text(key) if key else _text(message.value()),
        type=event_type,
        headers=headers,
        created_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp > 0 else None,
    )


class KafkaConnector:
    """A ``ConnectorConstructor`` over the Kafka topic ``topic`` (its own name, unescaped).

    Give a ``kafka://`` URL (``KafkaOptions`` as keyword arguments) or a shared
    ``KafkaClient``; ``mapper`` replaces ``message_event``.
    """

    def __init__(
        self,
        url: str | KafkaClient,
        topic: str,
        *,
        mapper: Mapper = message_event,
        **options: object,
    ) -> None:
        if not topic:
            raise AdapterError("a KafkaConnector needs the name of the topic it reads")
        if isinstance(url, KafkaClient):
            if options:
                raise TypeError("options go to the KafkaClient, not the connector")
            self._client, self._owns = url, False
        else:
            bootstrap, opts = split_url(url, dict(options))
            self._client, self._owns = KafkaClient(bootstrap, opts), True
        self.topic = topic
        self._mapper = mapper
        self._closed = False

    async def make(self, name: str) -> KafkaConnectorConsumer:
        if self._closed:
            raise AdapterError("the KafkaConnector is closed")
        client = self._client
        count = await client.partitions(self.topic, create=False)
        reader = PartitionReader(
            client.bootstrap, client.options, self.topic, name, list(range(count))
        )
        try:
            await reader.open(from_latest=False)
        except BaseException:
            await reader.close()
            raise
        return KafkaConnectorConsumer(reader, self._mapper)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns:
            await self._client.close()


class KafkaConnectorConsumer:
    """Reads the connector's topic under one name (order and cursor per partition)."""

    def __init__(self, reader: PartitionReader, mapper: Mapper) -> None:
        self._reader = reader
        self._mapper = mapper
        self._handed: dict[int, tuple[int, int]] = {}

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        events: list[ConnectorEvent] = []
        for message in await self._reader.fetch(max_events):
            event = self._mapper(message)
            self._handed[id(event)] = position(message)
            events.append(event)
        return events

    def partition(self, event: object) -> int:
        """The partition ``event`` (handed out, not yet acknowledged) came from."""
        where = self._handed.get(id(event))
        if where is None:
            raise AdapterError("not an unacknowledged event of this consumer")
        return where[0]

    def pending(self) -> int:
        """Messages fetched and not yet handed out (a hint)."""
        return self._reader.pending()

    async def ack(self, event: ConnectorEvent) -> None:
        where = self._handed.pop(id(event), None)
        if where is not None:
            self._reader.ack(*where)

    async def close(self) -> None:
        self._handed.clear()
        await self._reader.close()
