"""``KafkaEventStreamer``: a Kafka topic per conveyor topic, keyed by run ID.

- **Topics**: ``escape`` of the conveyor topic (injective, see ``_names``), created
  explicitly (``conveyor migrate``, or ``create_topics``) with ``partitions`` and
  ``replication``; the broker's auto-creation is never used.
- **Senders** share one producer (idempotent, ``acks=all``). A message's key is the run ID
  (the event's foreign ID), so one run's events share a partition and stay in order; its
  value is the status in decimal and its headers the engine's, as the original writes them.
- **Receivers** read assigned partitions from the offsets committed under the receiver's
  name (``PartitionReader``): ``Delivery.CURSOR``, one cursor per partition. An event's
  ``id`` is ``offset * partitions + partition``: unique per topic, increasing within a
  partition, and spread evenly over the engine's ``id % n`` shards. A step shard's
  receiver (``...-consumer-<i>-of-<n>``) reads only the partitions ``p`` with
  ``p % n == i - 1`` when ``n`` divides the partition count (then exactly its own events
  are there); otherwise it reads every partition and the engine filters, so a shard never
  misses an event whatever ``parallel_count`` and the partition count are.
- **Tails** (``TailsTopics``, for ``wait``) share one consumer per streamer (``_tail``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import ClassVar, Final

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from ._admin import TopicAdmin
from ._client import KafkaClient
from ._events import event_of
from ._names import escape
from ._options import KafkaOptions, split_url
from ._reader import PartitionReader, position
from ._tail import KafkaTail, TailHub

__all__ = ["KafkaEventReceiver", "KafkaEventSender", "KafkaEventStreamer", "shard_partitions"]

_SHARD: Final = re.compile(r"-consumer-(\d+)-of-(\d+)$")


def shard_partitions(name: str, partitions: int) -> list[int]:
    """The partitions a receiver named ``name`` reads (see the module docstring)."""
    everything = list(range(partitions))
    match = _SHARD.search(name)
    if match is None:
        return everything
    shard, shards = int(match.group(1)), int(match.group(2))
    if not 1 <= shard <= shards or shards > partitions or partitions % shards:
        return everything
    return [p for p in everything if p % shards == shard - 1]


class KafkaEventStreamer:
    """Event streamer on a Kafka cluster (``kafka://host:9092,...?partitions=3&...``).

    Give a URL and options (``KafkaOptions`` fields), or a ``KafkaClient`` to share.
    ``admin`` creates topics some other way than the cluster's CreateTopics.
    """

    delivery: ClassVar[Delivery] = Delivery.CURSOR

    def __init__(
        self,
        url: str | KafkaClient,
        *,
        admin: TopicAdmin | None = None,
        **options: object,
    ) -> None:
        if isinstance(url, KafkaClient):
            if options or admin is not None:
                raise TypeError("options and admin go to the KafkaClient, not the streamer")
            self._client, self._owns = url, False
        else:
            bootstrap, opts = split_url(url, dict(options))
            self._client, self._owns = KafkaClient(bootstrap, opts, admin=admin), True
        self._hub: TailHub | None = None
        self._closed = False

    @property
    def options(self) -> KafkaOptions:
        """The settings in force."""
        return self._client.options

    def topic(self, name: str) -> str:
        """The Kafka topic of conveyor topic ``name``. Raises ``AdapterError`` (too long)."""
        return escape(name, self._client.options.prefix)

    async def create_topics(self, names: Sequence[str]) -> list[str]:
        """Create the Kafka topics of conveyor topics ``names``, those missing, with the
        ``partitions`` and ``replication`` options; the Kafka names of those created."""
        return await self._client.create([self.topic(n) for n in names])

    async def new_sender(self, topic: str) -> KafkaEventSender:
        self._check_open()
        kafka_topic = self.topic(topic)
        await self._client.partitions(kafka_topic)
        return KafkaEventSender(topic, kafka_topic, self._client)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> KafkaEventReceiver:
        self._check_open()
        kafka_topic = self.topic(topic)
        count = await self._client.partitions(kafka_topic)
        client = self._client
        reader = PartitionReader(
            client.bootstrap,
            client.options,
            kafka_topic,
            name,
            shard_partitions(name, count),
            client.ends,
        )
        try:
            await reader.open(from_latest=stream_from_latest)
        except BaseException:
            await reader.close()
            raise
        return KafkaEventReceiver(reader, count)

    async def tail(self, topic: str) -> KafkaTail:
        """A tail of ``topic`` from its current end (``TailsTopics``): every event sent
        after this returns comes out of it. All tails of the streamer share one consumer
        (``TailHub``); one whose consumer failed is replaced at the next call."""
        self._check_open()
        kafka_topic = self.topic(topic)
        count = await self._client.partitions(kafka_topic)
        hub = self._hub
        if hub is None or hub.failure is not None:
            if hub is not None:
                await hub.close()
            client = self._client
            hub = self._hub = TailHub(client.bootstrap, client.options)
        return await hub.open(kafka_topic, count)

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("the Kafka event streamer is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        hub, self._hub = self._hub, None
        if hub is not None:
            await hub.close()
        if self._owns:
            await self._client.close()


class KafkaEventSender(EventSenderBase):
    """Appends events to one Kafka topic (keyed by foreign ID, the run ID)."""

    __slots__ = ("_client", "_kafka_topic")

    def __init__(self, topic: str, kafka_topic: str, client: KafkaClient) -> None:
        super().__init__(topic)
        self._kafka_topic = kafka_topic
        self._client = client

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        messages = [
            (
                e.foreign_id.encode(),
                str(int(e.type)).encode(),
                [(k, v.encode()) for k, v in e.headers.items()],
            )
            for e in events
        ]
        await self._client.produce(self._kafka_topic, messages, asyncio.get_running_loop())


class KafkaEventReceiver:
    """Reads one Kafka topic under a receiver name (``Delivery.CURSOR`` per partition)."""

    def __init__(self, reader: PartitionReader, partitions: int) -> None:
        self._reader = reader
        self._count = partitions
        self._handed: dict[int, tuple[int, int]] = {}

    @property
    def partitions(self) -> tuple[int, ...]:
        """The partitions this receiver reads."""
        return self._reader.partitions

    def partition(self, event: object) -> int:
        """The partition ``event`` was read from (``id % partitions``; ``ReadsPartitions``)."""
        if not isinstance(event, Event):
            raise TypeError(f"not an Event: {event!r}")
        return event.id % self._count

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        messages = await self._reader.fetch(max_events)
        events = [event_of(m, self._count) for m in messages]
        for message, event in zip(messages, events, strict=True):
            self._handed[event.id] = position(message)
        return events

    def pending(self) -> int:
        """Events of its partitions not handed out yet, as far as this process knows
        (``ReportsPending``: see ``PartitionReader.pending``)."""
        return self._reader.pending()

    async def ack(self, event: Event) -> None:
        where = self._handed.pop(event.id, None)
        if where is None:
            return  # acknowledged twice: harmless
        self._reader.ack(*where)

    async def close(self) -> None:
        self._handed.clear()
        await self._reader.close()
