"""Tails of topics (``TailsTopics``): one consumer per streamer for all of them.

A tail has no consumer, group or committed offset of its own: the streamer's ``TailHub``
owns one consumer (a group ID of its own that never commits), on a thread of its own, and
assigns it every partition of each topic some tail was opened on, from that partition's
high watermark at the first opening. The thread hands each fetched batch to the event
loop in one call, and the loop gives each tail the events of its topic at or after the
offsets where that tail was opened.

Where a tail starts. Opening one is a command to the hub's thread, which reads the
topic's high watermarks there and then (before its next fetch) hands the tail, with those
offsets, to the event loop, where it is registered before any batch fetched later. Every
message committed after ``tail()`` returned has an offset at or past those watermarks,
and every message fetched before the read was in the log before it, below them; messages
in between are left out by their offsets.

A topic stays assigned while the hub lives (a later tail on it needs no new assignment,
and an assignment dropped and made again could hand a message out twice). Gaps: a fetch
error other than the end of a partition gives the tails of its topic a batch with ``gap``
set; a hub whose consumer failed ends its tails' iterations with ``AdapterError`` (their
users open new ones, on a new hub).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import Sequence
from typing import Final

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._tail import QueuedTail
from ._client import base_config
from ._errors import translate
from ._events import event_of
from ._options import KafkaOptions

__all__ = ["KafkaTail", "TailHub"]

log = logging.getLogger("conveyor.adapters.kafka")

_FETCH_MAX: Final = 500
_WAIT: Final = 0.05
"""Seconds one fetch of the hub's thread waits: bounds how late it serves a command."""


class KafkaTail(QueuedTail):
    """Follows one topic from where it was opened (``Tail``); see the module docstring."""

    def __init__(self, hub: TailHub, topic: str, partitions: int) -> None:
        super().__init__(topic, batch=_FETCH_MAX)
        self._hub = hub
        self.partitions: int = partitions
        self._next: dict[int, int] = {}
        """Per partition, the first offset not yet handed out."""

    def partition(self, event: object) -> int:
        """The partition ``event`` was read from (``id % partitions``; ``ReadsPartitions``:
        the send order holds per partition)."""
        if not isinstance(event, Event):
            raise TypeError(f"not an Event: {event!r}")
        return event.id % self.partitions

    def _start(self, offsets: dict[int, int]) -> None:
        self._next = dict(offsets)

    def _push(self, messages: Sequence[Message], gap: bool = False) -> None:
        events: list[Event] = []
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None or offset < self._next.get(partition, 0):
                continue
            self._next[partition] = offset + 1
            events.append(event_of(message, self.partitions))
        self.push(events, gap=gap)

    def _fail(self, failure: BaseException) -> None:
        self.fail(f"the tail of Kafka topic {self.topic!r} failed", failure)

    def _on_close(self) -> None:
        self._hub._leave(self)


class TailHub:
    """The one consumer of a streamer's tails (module docstring)."""

    def __init__(self, bootstrap: str, options: KafkaOptions) -> None:
        self._config = base_config(bootstrap, options) | {
            "group.id": f"conveyor-tails-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "latest",
            "fetch.wait.max.ms": int(options.fetch_wait * 1000),
            "fetch.error.backoff.ms": 50,
        }
        self._timeout = options.request_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: queue.SimpleQueue[tuple[KafkaTail, int, asyncio.Future[None]]] = (
            queue.SimpleQueue()
        )
        self._tails: dict[str, set[KafkaTail]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        """Set once the hub's consumer failed: open tails on a new hub."""

    async def open(self, topic: str, partitions: int) -> KafkaTail:
        """A tail of ``topic`` (of ``partitions`` partitions) from its current end."""
        if self.failure is not None or self._stop.is_set():
            raise AdapterError("the Kafka tail hub is closed")
        loop = self._loop = asyncio.get_running_loop()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="conveyor-kafka-tails", daemon=True
            )
            self._thread.start()
        tail = KafkaTail(self, topic, partitions)
        opened: asyncio.Future[None] = loop.create_future()
        self._commands.put((tail, partitions, opened))
        await opened
        return tail

    def _leave(self, tail: KafkaTail) -> None:
        tails = self._tails.get(tail.topic)
        if tails is not None:
            tails.discard(tail)

    # ------------------------------------------------------------ the loop's side

    def _opened(
        self,
        tail: KafkaTail,
        offsets: dict[int, int] | None,
        failure: BaseException | None,
        opened: asyncio.Future[None],
    ) -> None:
        """Register ``tail`` (before any batch fetched after its watermarks were read)."""
        if opened.done():  # the caller was cancelled: the tail was never handed out
            return
        if failure is not None or offsets is None:
            opened.set_exception(failure or AdapterError("the Kafka tail hub failed"))
            return
        tail._start(offsets)
        self._tails.setdefault(tail.topic, set()).add(tail)
        opened.set_result(None)

    def _deliver(self, messages: list[Message], gaps: set[str]) -> None:
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            name = message.topic()
            if name is not None:
                by_topic.setdefault(name, []).append(message)
        for name in by_topic.keys() | gaps:
            for tail in list(self._tails.get(name, ())):
                tail._push(by_topic.get(name, []), gap=name in gaps)

    def _failed(self, failure: BaseException) -> None:
        self.failure = failure
        for tails in self._tails.values():
            for tail in list(tails):
                tail._fail(failure)

    # ------------------------------------------------------------ the thread's side

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            consumer = Consumer(self._config)
        except Exception as exc:
            failure = translate(exc, "opening the consumer of the Kafka tails")
            self._fail_commands(loop, failure)
            loop.call_soon_threadsafe(self._failed, failure)
            return
        assigned: set[str] = set()
        try:
            while not self._stop.is_set():
                self._serve(consumer, assigned, loop)
                if not assigned:
                    self._wait_for_command()
                    continue
                messages = consumer.consume(_FETCH_MAX, _WAIT)
                good, gaps = self._sort(messages)
                if good or gaps:
                    loop.call_soon_threadsafe(self._deliver, good, gaps)
        except Exception as exc:
            failure = translate(exc, "reading the Kafka tails' topics")
            log.warning("Kafka tails stopped: %r", exc)
            self._fail_commands(loop, failure)
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._failed, failure)
        finally:
            consumer.close()

    def _wait_for_command(self) -> None:
        try:
            command = self._commands.get(timeout=_WAIT)
        except queue.Empty:
            return
        self._commands.put(command)  # served in order by the next ``_serve``

    def _serve(
        self, consumer: Consumer, assigned: set[str], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Open the tails asked for: read the watermarks, assign a new topic there."""
        while True:
            try:
                tail, partitions, opened = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                offsets: dict[int, int] = {}
                for p in range(partitions):
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(tail.topic, p), timeout=self._timeout, cached=False
                    )
                    offsets[p] = high
                if tail.topic not in assigned:
                    consumer.incremental_assign(
                        [TopicPartition(tail.topic, p, o) for p, o in offsets.items()]
                    )
                    assigned.add(tail.topic)
            except Exception as exc:
                failure = translate(exc, f"opening a tail of topic {tail.topic!r}")
                loop.call_soon_threadsafe(self._opened, tail, None, failure, opened)
                continue
            loop.call_soon_threadsafe(self._opened, tail, offsets, None, opened)

    def _fail_commands(self, loop: asyncio.AbstractEventLoop, failure: BaseException) -> None:
        while True:
            try:
                tail, _partitions, opened = self._commands.get_nowait()
            except queue.Empty:
                return
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._opened, tail, None, failure, opened)

    @staticmethod
    def _sort(messages: list[Message]) -> tuple[list[Message], set[str]]:
        good: list[Message] = []
        gaps: set[str] = set()
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
                continue
            if error.fatal():
                raise translate(error, "reading the Kafka tails' topics")
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            log.warning("Kafka tails: %s", error.str())
            name = message.topic()
            if name is not None:
                gaps.add(name)
        return good, gaps

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop the consumer and end every tail's iteration. Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        for tails in self._tails.values():
            for tail in list(tails):
                await tail.close()
        self._tails.clear()
