"""``KafkaClient``: what a streamer's senders and receivers share on one cluster.

One producer (librdkafka batches and pipelines every sender's messages on it), served by a
thread of its own that polls for delivery reports and hands each to the event loop; the
topic metadata (partition counts) and topic creation. librdkafka's calls that block run on
worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from ..._errors import AdapterError
from ._admin import KafkaTopicAdmin, TopicAdmin, TopicSpec
from ._errors import translate
from ._options import KafkaOptions

__all__ = ["KafkaClient", "Delivery", "base_config"]

Delivery = asyncio.Future[None]


def base_config(bootstrap: str, options: KafkaOptions) -> dict[str, Any]:
    """The librdkafka settings every client of the adapters starts from."""
    return {
        "bootstrap.servers": bootstrap,
        "allow.auto.create.topics": False,
        "socket.timeout.ms": int(options.request_timeout * 1000),
        "log_level": 3,
    }


class KafkaClient:
    """The shared producer, metadata and topic creation of one cluster."""

    def __init__(
        self, bootstrap: str, options: KafkaOptions, *, admin: TopicAdmin | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.options = options
        self._admin = admin
        self._own_admin = admin is None
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(4, thread_name_prefix="conveyor-kafka")
        self._partitions: dict[str, int] = {}
        self.ends: dict[tuple[str, int], int] = {}
        """Per topic and partition, one past the highest offset this client's producer
        got a delivery report for (what receivers of this process know is there)."""
        self._closed = False

    # ------------------------------------------------------------ producing

    def producer(self) -> Producer:
        """The shared producer (made, with its polling thread, at first use)."""
        if self._closed:
            raise AdapterError("the Kafka client is closed")
        with self._lock:
            if self._producer is None:
                config = base_config(self.bootstrap, self.options) | {
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": self.options.linger * 1000,
                    "partitioner": "murmur2_random",
                    "message.timeout.ms": int(self.options.request_timeout * 1000),
                }
                self._producer = Producer(config)
                self._poller = threading.Thread(
                    target=self._poll, name="conveyor-kafka-producer", daemon=True
                )
                self._poller.start()
            return self._producer

    def _poll(self) -> None:
        """Serve delivery reports until ``close`` (each one's callback resolves a future)."""
        producer = self._producer
        assert producer is not None
        while not self._stop.is_set():
            producer.poll(0.1)

    def produce(
        self,
        topic: str,
        messages: Sequence[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]],
        loop: asyncio.AbstractEventLoop,
    ) -> Delivery:
        """Queue ``messages`` (key, value, headers) in order; the future resolves when the
        cluster has them all, or fails with the first failure.

        The delivery reports are counted on the producer's thread and the event loop is
        woken once per batch, not once per message.
        """
        done: Delivery = loop.create_future()
        batch = _Batch(done, loop, topic, len(messages), self.ends)
        produce = self.producer().produce
        try:
            for key, value, headers in messages:
                produce(topic, value, key, headers=list(headers), on_delivery=batch.report)
        except (BufferError, Exception) as exc:
            # what was queued is still reported (the batch settles once); this fails now
            batch.abandon()
            raise translate(exc, f"sending to topic {topic!r}") from exc
        return done

    # ------------------------------------------------------------ topics

    async def partitions(self, topic: str, *, create: bool = True) -> int:
        """How many partitions ``topic`` has (creating it first if ``create_topics`` and
        ``create``).

        Raises ``AdapterError`` if it does not exist (and may not be created).
        """
        known = self._partitions.get(topic)
        if known is not None:
            return known
        count: int = await self._call(self._lookup, topic)
        if count == 0:
            if not create:
                raise AdapterError(f"Kafka topic {topic!r} does not exist")
            if not self.options.create_topics:
                raise AdapterError(
                    f"Kafka topic {topic!r} does not exist: create it with `conveyor "
                    "migrate --events kafka://...` (or set create_topics=true)"
                )
            await self.create([topic])
            count = await self._call(self._wait_for, topic)
        self._partitions[topic] = count
        return count

    async def create(self, topics: Sequence[str]) -> list[str]:
        """Create ``topics`` (escaped names) with the configured partitions and replication,
        those that do not exist; the names of those created."""
        if self._admin is None:
            self._admin = KafkaTopicAdmin(self.bootstrap, timeout=self.options.request_timeout)
        opts = self.options
        created = await self._admin.create_topics(
            [TopicSpec(t, opts.partitions, opts.replication) for t in topics]
        )
        return list(created)

    def _lookup(self, topic: str) -> int:
        try:
            metadata = self.producer().list_topics(topic, timeout=self.options.request_timeout)
        except Exception as exc:
            raise translate(exc, f"reading the metadata of topic {topic!r}") from exc
        found = metadata.topics.get(topic)
        if found is None:
            return 0
        if found.error is not None:
            if found.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                return 0
            raise translate(found.error, f"reading the metadata of topic {topic!r}")
        partitions: dict[int, object] = found.partitions
        return len(partitions)

    def _wait_for(self, topic: str) -> int:
        """The partition count of a topic just created, once the metadata shows it."""
        deadline = time.monotonic() + self.options.request_timeout
        while True:
            count = self._lookup(topic)
            if count:
                return count
            if time.monotonic() > deadline:
                raise AdapterError(f"Kafka topic {topic!r} was created but never showed up")
            time.sleep(0.05)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Deliver what is queued (bounded by ``request_timeout``), stop the producer's
        thread and release the admin. Idempotent."""
        if self._closed:
            return
        self._closed = True
        producer, poller = self._producer, self._poller
        if producer is not None and poller is not None:
            loop = asyncio.get_running_loop()
            self._stop.set()  # then flush serves the last reports: one thread at a time
            await loop.run_in_executor(self._threads, poller.join)
            await loop.run_in_executor(self._threads, producer.flush, self.options.request_timeout)
            self._producer = self._poller = None  # librdkafka's handle goes with the object
        if self._admin is not None and self._own_admin:
            await self._admin.close()
        self._threads.shutdown(wait=False)


class _Batch:
    """The delivery reports of one batch, counted on the producer's thread (librdkafka
    calls ``report`` there, one call at a time), settling its future once."""

    __slots__ = ("_done", "_ends", "_failure", "_left", "_loop", "_topic")

    def __init__(
        self,
        done: Delivery,
        loop: asyncio.AbstractEventLoop,
        topic: str,
        count: int,
        ends: dict[tuple[str, int], int],
    ) -> None:
        self._done = done
        self._loop = loop
        self._topic = topic
        self._left = count
        self._ends = ends
        self._failure: KafkaError | None = None

    def report(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            if self._failure is None:
                self._failure = error
        else:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                key = (self._topic, partition)
                if offset + 1 > self._ends.get(key, 0):
                    self._ends[key] = offset + 1
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(_settle, self._done, self._failure, self._topic)

    def abandon(self) -> None:
        """A message of the batch could not be queued: its caller gets that error; the
        reports of the others are still counted down but settle nothing."""
        self._left = -1


def _settle(done: Delivery, error: KafkaError | None, topic: str) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(translate(error, f"sending to topic {topic!r}"))
