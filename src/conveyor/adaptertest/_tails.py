"""The ``TailsTopics`` conformance suite: cursorless reads of a topic from its end.

Run it beside ``EventStreamerSuite`` with the same ``streamer`` fixture. Its first case
checks the claim (``isinstance``); the others the promise on ``conveyor.abc.Tail``. No
case waits for time to pass: to show that a tail got nothing it should not have, a case
sends a later marker event and checks that the marker comes next. A tail over a
partitioned log (one that ``ReadsPartitions``, as Kafka's) keeps the send order per
partition; order is checked per partition for it, and over the whole topic otherwise
(``assert_in_log_order``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest_asyncio

from .._capabilities import ReadsPartitions, Tail, TailBatch, TailsTopics
from .._event import Event
from .._protocols import EventStreamer, OutgoingEvent
from ._event_streamer import Endpoints, StreamerCases, _headers, _yield_to_others
from ._fixtures import foreign_ids, new_name, within
from ._partitions import assert_in_log_order

__all__ = ["TailsTopicsSuite"]

T = TypeVar("T")


class Tails:
    """Opens tails for one case and closes them all when it ends."""

    def __init__(self, streamer: EventStreamer) -> None:
        self.streamer = streamer
        self._closes = contextlib.AsyncExitStack()

    async def open(self, topic: str) -> Tail:
        streamer = self.streamer
        assert isinstance(streamer, TailsTopics), (
            f"{type(streamer).__name__} has no tail(): it does not tail topics"
        )
        tail = await streamer.tail(topic)
        self._closes.push_async_callback(tail.close)
        return tail

    async def aclose(self) -> None:
        """Close every tail opened (again, if a case closed it: ``close`` is idempotent);
        all of them, even if one fails."""
        await self._closes.aclose()


class TailsTopicsSuite(StreamerCases):
    """Cases for event streamers that tail topics (``TailsTopics``).

    Override the ``streamer`` fixture as for ``EventStreamerSuite`` (the same streamer
    passes both)::

        class TestMyStreamerTails(TailsTopicsSuite):
            @pytest.fixture
            async def streamer(self) -> AsyncIterator[EventStreamer]:
                streamer = MyStreamer(...)
                yield streamer
                await streamer.close()

    The cases run on a healthy backend, so they expect no batch with ``gap`` set: a tail
    that cannot rule out missed events while nothing fails is not following its topic.
    Topic names are unique per case. ``recv_timeout`` bounds every wait for a batch.
    """

    @pytest_asyncio.fixture
    async def tails(self, streamer: EventStreamer) -> AsyncIterator[Tails]:
        """Tails of one case, all closed (again) when it ends."""
        tails = Tails(streamer)
        try:
            yield tails
        finally:
            await tails.aclose()

    async def _batch(self, tail: Tail) -> TailBatch:
        batch = await within(tail.__anext__(), self.recv_timeout, "a batch from the tail")
        assert isinstance(batch, TailBatch), f"the tail handed out {batch!r}, not a TailBatch"
        assert not batch.gap, "a batch with a gap, though nothing failed"
        assert batch.events, "a batch without events and without a gap"
        return batch

    async def _collect(self, tail: Tail, count: int) -> list[Event]:
        """At least ``count`` events, from as many batches as it takes."""
        events: list[Event] = []
        while len(events) < count:
            events.extend((await self._batch(tail)).events)
        return events

    async def _while_waiting(
        self, read: Awaitable[T], then: Callable[[], Awaitable[object]], what: str
    ) -> T:
        """Start ``read``, check that it waits, do ``then``, and return what ``read``
        returns (within ``recv_timeout``)."""
        pending = asyncio.ensure_future(read)
        try:
            await _yield_to_others()
            assert not pending.done(), f"{what} returned before anything happened"
            await then()
            return await within(pending, self.recv_timeout, what)
        finally:
            pending.cancel()

    async def _ended(self, tail: Tail) -> bool:
        """Whether the tail's next read ends the iteration (instead of a batch)."""

        async def read() -> bool:
            try:
                await tail.__anext__()
            except StopAsyncIteration:
                return True
            return False

        return await within(read(), self.recv_timeout, "the tail's read to end")

    # ------------------------------------------------------------ the claim

    async def test_the_streamer_tails_topics_and_its_tails_are_tails(
        self, streamer: EventStreamer, tails: Tails
    ) -> None:
        assert isinstance(streamer, TailsTopics)

        tail = await tails.open(new_name("test"))

        assert isinstance(tail, Tail)

    # ------------------------------------------------------------ what a tail hands out

    async def test_events_sent_before_the_tail_opened_are_not_handed_out_later_ones_are(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given two events on a topic
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(f"before-{i}", 1, _headers(topic)) for i in range(2)])

        # When a tail opens and three more are sent (one by one and as a batch)
        tail = await tails.open(topic)
        await sender.send("after-0", 1, _headers(topic))
        await sender.send_many([OutgoingEvent(f"after-{i}", 1, _headers(topic)) for i in (1, 2)])

        # Then the tail hands out exactly the later three, in order
        events = await self._collect(tail, 3)
        assert_in_log_order(tail, events, _foreign_id, ["after-0", "after-1", "after-2"])
        by_partition: dict[int, list[int]] = {}
        for e in events:
            by_partition.setdefault(_partition_of(tail, e), []).append(e.id)
        for ids in by_partition.values():
            assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"

    async def test_events_round_trip_foreign_id_type_and_headers(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        topic = new_name("test")
        tail = await tails.open(topic)
        sender = await endpoints.sender(topic)
        outgoing = [
            OutgoingEvent("Andrew Wormald", 7, _headers(topic, run_id="r-1", x="any ☃ =;,")),
            OutgoingEvent("second", 3, _headers(topic, empty="")),
        ]

        await sender.send_many(outgoing)
        events = await self._collect(tail, 2)

        assert [(e.foreign_id, e.type, dict(e.headers)) for e in events] == [
            (o.foreign_id, o.type, dict(o.headers)) for o in outgoing
        ]

    async def test_a_tail_of_a_topic_never_used_hands_out_its_first_event(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        topic = new_name("fresh")
        tail = await tails.open(topic)

        await (await endpoints.sender(topic)).send("first", 1, _headers(topic))

        assert foreign_ids(await self._collect(tail, 1)) == ["first"]

    async def test_a_waiting_tail_is_woken_by_a_send(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given a tail waiting for its next batch
        topic = new_name("test")
        tail = await tails.open(topic)
        sender = await endpoints.sender(topic)

        # When an event is sent, then the waiting read returns it
        batch = await self._while_waiting(
            self._batch(tail), lambda: sender.send("wake", 1, _headers(topic)), "the tail's read"
        )

        assert foreign_ids(batch.events) == ["wake"]

    async def test_every_event_is_handed_out_once_across_many_batches(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given a tail and more events than one batch may hold, from two senders
        topic = new_name("test")
        tail = await tails.open(topic)
        first, second = await endpoints.sender(topic), await endpoints.sender(topic)
        await first.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(600)])
        await second.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(600, 700)])
        await first.send("marker", 1, _headers(topic))

        # Then each comes out once, in order, the marker last
        events = await self._collect(tail, 701)
        assert_in_log_order(tail, events, _foreign_id, [*(str(i) for i in range(700)), "marker"])

    async def test_two_tails_of_one_topic_each_get_every_event(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given two tails of one topic
        topic = new_name("test")
        first, second = await tails.open(topic), await tails.open(topic)
        sender = await endpoints.sender(topic)

        # When three events are sent
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])

        # Then each tail hands out all three: reading one takes nothing from the other
        assert_in_log_order(first, await self._collect(first, 3), _foreign_id, ["0", "1", "2"])
        assert_in_log_order(second, await self._collect(second, 3), _foreign_id, ["0", "1", "2"])

    async def test_a_tail_opened_later_starts_at_its_own_open(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given a tail that has handed out an event
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        early = await tails.open(topic)
        await sender.send("one", 1, _headers(topic))
        assert foreign_ids(await self._collect(early, 1)) == ["one"]

        # When a second tail opens and another event is sent
        late = await tails.open(topic)
        await sender.send("two", 1, _headers(topic))

        # Then both hand it out next, and the later tail never sees the first
        assert foreign_ids(await self._collect(early, 1)) == ["two"]
        assert foreign_ids(await self._collect(late, 1)) == ["two"]

    async def test_a_tail_gets_nothing_of_other_topics(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given tails of two topics
        topic, other = new_name("test"), new_name("other")
        tail, other_tail = await tails.open(topic), await tails.open(other)

        # When events go to the other topic, and then a marker to this one
        to_other = await endpoints.sender(other)
        await to_other.send_many([OutgoingEvent(str(i), 1, _headers(other)) for i in range(3)])
        await (await endpoints.sender(topic)).send("marker", 1, _headers(topic))

        # Then this tail's next batch is the marker alone, and the other tail has its own
        assert foreign_ids((await self._batch(tail)).events) == ["marker"]
        got = await self._collect(other_tail, 3)
        assert_in_log_order(other_tail, got, _foreign_id, ["0", "1", "2"])

    # ------------------------------------------------------------ no cursor, no acks

    async def test_a_tail_leaves_no_cursor_and_needs_no_acks(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given an event, then a tail that hands out twenty more, one send at a time,
        # none of them acknowledged (a tail has nothing to acknowledge with)
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send("before", 1, _headers(topic))
        tail = await tails.open(topic)
        for i in range(20):
            await sender.send(str(i), 1, _headers(topic))
            assert foreign_ids(await self._collect(tail, 1)) == [str(i)]
        await tail.close()

        # When receivers open afterwards, one of a new name and one from the latest
        receiver = await endpoints.receiver(topic, new_name("reader"))
        latest = await endpoints.receiver(topic, new_name("latest"), stream_from_latest=True)
        await sender.send("after", 1, _headers(topic))

        # Then the first reads the topic from its start: the tail moved no cursor of any
        # name, and the topic kept every event for it
        received: list[Event] = []
        while len(received) < 22:
            received.extend(await self._recv(receiver, 50))
        expected = ["before", *(str(i) for i in range(20)), "after"]
        assert_in_log_order(receiver, received, _foreign_id, expected)
        assert foreign_ids(await self._recv(latest, 10)) == ["after"]

    # ------------------------------------------------------------ closing

    async def test_close_ends_a_pending_read(self, tails: Tails) -> None:
        # Given a tail waiting for its next batch
        tail = await tails.open(new_name("test"))

        # When it is closed, then the waiting read ends the iteration
        assert await self._while_waiting(self._ended(tail), tail.close, "the tail's read")

    async def test_a_closed_tail_ends_every_later_iteration_and_close_is_idempotent(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given a closed tail, with events sent to its topic before and after the close
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        tail = await tails.open(topic)
        await sender.send("before-close", 1, _headers(topic))
        await tail.close()
        await sender.send("after-close", 1, _headers(topic))

        # Then reading it ends at once, every time, and a second close returns quietly
        assert await self._ended(tail)
        assert await self._ended(tail)
        batches: list[TailBatch] = []

        async def iterate() -> None:
            async for batch in tail:
                batches.append(batch)

        await within(iterate(), self.recv_timeout, "an async for over a closed tail to end")
        assert batches == []
        await tail.close()

    async def test_closing_one_tail_leaves_the_others_of_its_topic_reading(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given two tails of a topic, one waiting to read
        topic = new_name("test")
        closing, staying = await tails.open(topic), await tails.open(topic)
        sender = await endpoints.sender(topic)

        # When the other one closes and an event is sent
        async def close_and_send() -> None:
            await closing.close()
            await sender.send("still", 1, _headers(topic))

        # Then the waiting read hands it out
        batch = await self._while_waiting(
            self._batch(staying), close_and_send, "the remaining tail's read"
        )
        assert foreign_ids(batch.events) == ["still"]

    async def test_many_tails_opened_and_closed_leave_the_streamer_working(
        self, endpoints: Endpoints, tails: Tails
    ) -> None:
        # Given fifty tails over five topics, each handed out one event, then all closed
        topics = [new_name("many") for _ in range(5)]
        opened = [await tails.open(topics[i % 5]) for i in range(50)]
        senders = [await endpoints.sender(topic) for topic in topics]
        for topic, sender in zip(topics, senders, strict=True):
            await sender.send(topic, 1, _headers(topic))
        for i, tail in enumerate(opened):
            assert foreign_ids(await self._collect(tail, 1)) == [topics[i % 5]]
        for tail in opened:
            await tail.close()

        # When a receiver and a new tail use one of the topics
        topic, sender = topics[0], senders[0]
        receiver = await endpoints.receiver(topic, new_name("reader"), stream_from_latest=True)
        tail = await tails.open(topic)
        await sender.send("later", 1, _headers(topic))

        # Then both get the event, and the closed tails hand out nothing
        assert foreign_ids(await self._recv(receiver, 10)) == ["later"]
        assert foreign_ids(await self._collect(tail, 1)) == ["later"]
        for closed in opened[:3]:
            assert await self._ended(closed)


def _foreign_id(event: Event) -> str:
    return event.foreign_id


def _partition_of(tail: Tail, event: Event) -> int:
    return tail.partition(event) if isinstance(tail, ReadsPartitions) else 0
