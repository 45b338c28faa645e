"""``PartitionReader``: a consumer of assigned partitions with a committed offset each.

What the streamer's receivers and the connector's consumers share. Partitions are assigned
(``assign``), never balanced by a consumer group: a group's rebalance after a crash waits
out ``session.timeout.ms``, while here the engine's role decides who reads. The receiver's
name is the group ID only to keep committed offsets (commits need no membership). Each
partition has an ``AckTracker``: its offset is committed only over an unbroken run of
acknowledged messages, soon after the acknowledgement (``commit_interval``) and at close.

The consumer's calls block, so each reader has a thread of its own: one fetch at a time runs
there (``poll`` for the first message, then what is already buffered), and a fetch whose
caller was cancelled still lands in the reader's buffer, so nothing it got is lost. Commits
run on a second thread: even an asynchronous ``commit`` waits while the consumer is inside
``poll`` (measured: up to the whole poll timeout), which on the event loop stalled every
other task of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ..._errors import AdapterError
from ..._kit._acks import AckTracker, NotHandedOut
from ._client import base_config
from ._errors import translate
from ._options import KafkaOptions

__all__ = ["PartitionReader", "position"]

log = logging.getLogger("conveyor.adapters.kafka")

_FETCH_MAX: Final = 500
_POLL: Final = 0.2
"""Seconds one blocking poll waits: bounds how long ``close`` waits for a fetch."""


def position(message: Message) -> tuple[int, int]:
    """The partition and offset of a message the cluster delivered."""
    partition, offset = message.partition(), message.offset()
    if partition is None or offset is None:  # only produced messages lack them
        raise AdapterError("a Kafka message without a partition or offset")
    return partition, offset


class PartitionReader:
    """Reads ``partitions`` of ``topic`` from the offsets committed under ``group``."""

    def __init__(
        self,
        bootstrap: str,
        options: KafkaOptions,
        topic: str,
        group: str,
        partitions: Sequence[int],
        ends: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        self.topic: str = topic
        self.group: str = group
        self.partitions: tuple[int, ...] = tuple(partitions)
        self._options = options
        self._config = base_config(bootstrap, options) | {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": int(options.fetch_wait * 1000),
            "fetch.error.backoff.ms": 50,
        }
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="conveyor-kafka-reader")
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="conveyor-kafka-commit")
        self._committing: asyncio.Future[None] | None = None
        self._consumer: Consumer | None = None
        self._trackers: dict[int, AckTracker] = {}
        self._next: dict[int, int] = {}
        """Per partition, the offset of the next message to hand out."""
        self._ends: dict[int, int] = {}
        """Per partition, its high watermark when opened."""
        self._sent: Mapping[tuple[str, int], int] = {} if ends is None else ends
        self._buffer: deque[Message] = deque()
        self._fetching: asyncio.Future[list[Message]] | None = None
        self._failure: BaseException | None = None
        self._dirty: set[int] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False

    async def open(self, *, from_latest: bool) -> None:
        """Connect and position every partition: after its committed offset, else at the
        start, or (``from_latest``) at its end now, which is committed at once so that a
        reader opened again later starts there too."""
        await self._run(self._open, from_latest)

    def _open(self, from_latest: bool) -> None:
        try:
            consumer = self._consumer = Consumer(self._config)
            timeout = self._options.request_timeout
            committed = consumer.committed(
                [TopicPartition(self.topic, p) for p in self.partitions], timeout=timeout
            )
            start: list[TopicPartition] = []
            fresh: list[TopicPartition] = []
            for tp in committed:
                if tp.error is not None:
                    raise translate(tp.error, f"reading the offsets of {self.group!r}")
                # an explicit offset, not OFFSET_BEGINNING: librdkafka resolves that through
                # its offset-reset path, measured at 0.5 s before the first message
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, tp.partition), timeout=timeout, cached=False
                )
                self._ends[tp.partition] = high
                if tp.offset >= 0:
                    start.append(TopicPartition(self.topic, tp.partition, tp.offset))
                elif from_latest:
                    fresh.append(TopicPartition(self.topic, tp.partition, high))
                else:
                    start.append(TopicPartition(self.topic, tp.partition, low))
            if fresh:
                consumer.commit(offsets=fresh, asynchronous=False)
            positions = start + fresh
            for tp in positions:
                # the tracker's cursor is the last position acknowledged: one before the next
                self._trackers[tp.partition] = AckTracker(tp.offset - 1)
                self._next[tp.partition] = tp.offset
            consumer.assign(positions)
        except AdapterError:
            raise
        except Exception as exc:
            raise translate(exc, f"opening a reader of topic {self.topic!r}") from exc

    # ------------------------------------------------------------ reading

    async def fetch(self, max_events: int) -> list[Message]:
        """Wait for at least one message; return up to ``max_events`` (cancellable: a
        fetch cut short keeps what it got for the next call)."""
        while True:
            if self._buffer:
                count = min(max_events, len(self._buffer))
                taken = [self._buffer.popleft() for _ in range(count)]
                for message in taken:
                    partition, offset = position(message)
                    tracker = self._trackers.get(partition)
                    if tracker is not None:
                        tracker.hand_out((offset,))
                    self._next[partition] = offset + 1
                return taken
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self._closed:
                raise AdapterError(f"the reader of topic {self.topic!r} is closed")
            if self._fetching is None:
                loop = asyncio.get_running_loop()
                fetching = loop.run_in_executor(self._thread, self._fetch)
                fetching.add_done_callback(self._landed)
                self._fetching = fetching
            with contextlib.suppress(Exception):  # kept by ``_landed``, raised above
                await asyncio.shield(self._fetching)

    def pending(self) -> int:
        """At least how many messages of the partitions this reader has not handed out, as
        far as this process knows (``ReportsPending``): a partition is behind while its
        known end, the high watermark at ``open`` or past what this process's producer
        delivered to it, is past the next offset to hand out. No request: the sends of
        other processes count once fetched."""
        behind = len(self._buffer)
        if behind:
            return behind
        for partition, next_offset in self._next.items():
            end = max(self._ends.get(partition, 0), self._sent.get((self.topic, partition), 0))
            behind += max(0, end - next_offset)
        return behind

    def _fetch(self) -> list[Message]:
        consumer = self._consumer
        assert consumer is not None
        first = consumer.poll(_POLL)
        if first is None:
            return []
        messages = [first, *consumer.consume(_FETCH_MAX - 1, 0)]
        good: list[Message] = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.fatal():
                raise translate(error, f"reading topic {self.topic!r}")
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("Kafka reader of %r: %s", self.topic, error.str())
        return good

    def _landed(self, fetching: asyncio.Future[list[Message]]) -> None:
        self._fetching = None
        if fetching.cancelled():
            return
        failure = fetching.exception()
        if failure is not None:
            self._failure = failure
            return
        self._buffer.extend(fetching.result())

    # ------------------------------------------------------------ acknowledging

    def ack(self, partition: int, offset: int) -> None:
        """Acknowledge one message; its partition's offset is committed soon after if it
        moved. Raises ``AdapterError`` for a message this reader did not hand out."""
        tracker = self._trackers.get(partition)
        try:
            if tracker is None:
                raise NotHandedOut(offset)
            moved = tracker.ack(offset)
        except NotHandedOut:
            raise AdapterError(
                f"ack of an event this receiver of {self.topic!r} did not hand out"
            ) from None
        if moved and not self._closed:
            self._dirty.add(partition)
            if self._flush is None:
                loop = asyncio.get_running_loop()
                self._flush = loop.call_later(self._options.commit_interval, self._commit_soon)

    def _offsets(self) -> list[TopicPartition]:
        dirty, self._dirty = self._dirty, set()
        return [TopicPartition(self.topic, p, self._trackers[p].committed + 1) for p in dirty]

    def _commit_soon(self) -> None:
        """Commit the moved offsets on the committer thread (one commit at a time: one
        that finds a commit in flight is left to that commit's end)."""
        self._flush = None
        consumer = self._consumer
        if consumer is None or self._committing is not None:
            return
        offsets = self._offsets()
        if not offsets:
            return
        loop = asyncio.get_running_loop()
        committing = loop.run_in_executor(self._committer, self._commit, consumer, offsets)
        self._committing = committing

        def done(future: asyncio.Future[None]) -> None:
            self._committing = None
            failure = None if future.cancelled() else future.exception()
            if failure is not None:  # commit again later: the offsets are still ahead
                self._dirty.update(tp.partition for tp in offsets)
                log.warning("Kafka commit for %r failed: %r", self.group, failure)
            if self._dirty and self._flush is None and not self._closed:
                self._flush = loop.call_later(self._options.commit_interval, self._commit_soon)

        committing.add_done_callback(done)

    @staticmethod
    def _commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
        consumer.commit(offsets=offsets, asynchronous=True)

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop reading, commit what was acknowledged, leave. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        pending = {f for f in (self._fetching, self._committing) if f is not None}
        if pending:
            await asyncio.wait(pending)
        self._buffer.clear()
        try:
            await self._run(self._close, self._offsets())
        finally:
            self._thread.shutdown(wait=False)
            self._committer.shutdown(wait=False)

    def _close(self, offsets: list[TopicPartition]) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            if offsets:
                consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:
            log.warning("Kafka commit for %r at close failed: %r", self.group, exc)
        finally:
            consumer.close()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
