"""The RabbitMQ streams event streamer: the conformance suite, names, layout, failures."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from _rabbitmq_support import delete_streams, new_prefix, rabbitmq_url, until_stored, with_options

from conveyor.abc import (
    AdapterError,
    AdapterUnavailable,
    Delivery,
    Event,
    EventStreamer,
    Header,
    OutgoingEvent,
)
from conveyor.adapters.rabbitmq import RabbitConnection, RabbitEventStreamer
from conveyor.adaptertest import (
    EventStreamerSuite,
    ReportsPendingSuite,
    TailsTopicsSuite,
    new_name,
)
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT, within

__all__ = ["rabbitmq_url"]

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def rabbit_streamer(rabbitmq_url: str) -> AsyncIterator[RabbitEventStreamer]:
    streamer = RabbitEventStreamer(with_options(rabbitmq_url, prefix=new_prefix()))
    try:
        yield streamer
    finally:
        made = streamer.connection.known_streams
        await streamer.close()
        await delete_streams(rabbitmq_url, made)


class TestRabbitEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, rabbit_streamer: RabbitEventStreamer) -> EventStreamer:
        return rabbit_streamer


class TestRabbitTails(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self, rabbit_streamer: RabbitEventStreamer) -> EventStreamer:
        return rabbit_streamer


class TestRabbitReportsPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self, rabbit_streamer: RabbitEventStreamer) -> EventStreamer:
        return rabbit_streamer


def test_the_streamer_keeps_a_cursor_per_receiver_name() -> None:
    assert RabbitEventStreamer.delivery is Delivery.CURSOR


# --------------------------------------------------------------------------- layout


async def test_event_ids_are_consecutive_offsets_whatever_the_cursors_store(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given events sent, received and acknowledged one by one (each ack stores a cursor)
    topic = new_name("test")
    sender = await rabbit_streamer.new_sender(topic)
    receiver = await rabbit_streamer.new_receiver(topic, new_name("reader"))
    ids: list[int] = []
    for i in range(20):
        await sender.send(f"run-{i}", 1, {})
        (event,) = await within(receiver.recv(), WAIT_TIMEOUT, "an event")
        await receiver.ack(event)
        await asyncio.sleep(0)  # the cursor is stored in this turn of the loop
        ids.append(event.id)

    # Then the IDs have no gaps (cursors live in the topic's cursor stream), so the
    # engine's shards (id % n) split the events evenly
    assert ids == list(range(ids[0], ids[0] + 20))
    assert Counter(i % 4 for i in ids) == dict.fromkeys(range(4), 5)


async def test_topic_names_rabbitmq_would_not_take_as_they_are_work(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    for topic in ("sync user 2-1", "a.b", "amq.topic", "☃ %2F"):
        sender = await rabbit_streamer.new_sender(topic)
        receiver = await rabbit_streamer.new_receiver(topic, "reader ☃")
        await sender.send(topic, 1, {})

        (event,) = await within(receiver.recv(), WAIT_TIMEOUT, f"the event of {topic!r}")

        assert event.foreign_id == topic
        await receiver.close()


async def test_a_topic_too_long_for_rabbitmq_fails_clearly(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    with pytest.raises(AdapterError, match="too long for RabbitMQ"):
        await rabbit_streamer.new_sender("t" * 300)
    with pytest.raises(AdapterError, match="too long for RabbitMQ"):
        await rabbit_streamer.new_receiver("t" * 300, "reader")
    with pytest.raises(AdapterError, match="at most 255 bytes"):
        await rabbit_streamer.new_receiver("t", "r" * 300)


# --------------------------------------------------------------------------- failures


async def test_a_wrong_password_is_refused_without_showing_it(rabbitmq_url: str) -> None:
    parts = urlsplit(rabbitmq_url)
    wrong = parts._replace(netloc=f"{parts.username}:n0t-th3-pw@{parts.hostname}:{parts.port}")
    streamer = RabbitEventStreamer(urlunsplit(wrong))
    try:
        sender = await streamer.new_sender("t")  # connects at first use
        with pytest.raises(AdapterError) as raised:
            await sender.send("1", 1, {})
    finally:
        await streamer.close()

    assert "refused user" in str(raised.value)
    assert "n0t-th3-pw" not in str(raised.value)
    assert not isinstance(raised.value, AdapterUnavailable), "a refusal is not worth a retry"


async def _drop(streamer: RabbitEventStreamer) -> None:
    """Cut every connection of the streamer (publishing, main and each receiver's own)
    from this side, as a network failure would."""
    await streamer.connection.client()
    await streamer.connection.client(publishing=True)
    for client in list(streamer.connection._clients.values()):
        transport = client._protocol.transport
        assert transport is not None
        transport.abort()
        await within(client.wait_lost(), WAIT_TIMEOUT, "the connection to end")


async def test_a_receiver_goes_on_over_a_new_connection_when_its_connection_drops(
    rabbitmq_url: str, rabbit_streamer: RabbitEventStreamer
) -> None:
    # Given a receiver that was handed four events and acknowledged the first two
    topic, name = new_name("test"), new_name("reader")
    sender = await rabbit_streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(4)])
    receiver = await rabbit_streamer.new_receiver(topic, name)
    events: list[Event] = []
    while len(events) < 4:
        events += await within(receiver.recv(4), WAIT_TIMEOUT, "the events")
    for event in events[:2]:
        await receiver.ack(event)

    # When the connections drop under it
    await _drop(rabbit_streamer)

    # Then it goes on (subscribed again after what it had received): the next event
    # comes, nothing twice, and acknowledging the two it held moves the cursor on
    await sender.send("4", 1, {})
    (event,) = await within(receiver.recv(4), WAIT_TIMEOUT, "the event after the drop")
    assert event.foreign_id == "4"
    for held in [*events[2:], event]:
        await receiver.ack(held)
    cursors = rabbit_streamer.connection.topic(topic).cursors
    await until_stored(rabbitmq_url, cursors, name, event.id)
    await receiver.close()


async def test_a_sender_whose_confirm_is_lost_with_the_connection_fails_unavailable(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    topic = new_name("test")
    sender = await rabbit_streamer.new_sender(topic)
    await sender.send("warm", 1, {})
    client = await rabbit_streamer.connection.client(publishing=True)
    transport = client._protocol.transport
    assert transport is not None

    sending = asyncio.create_task(sender.send("lost", 1, {}))
    await asyncio.sleep(0)  # written, not yet confirmed
    transport.abort()

    with pytest.raises(AdapterUnavailable):
        await within(sending, WAIT_TIMEOUT, "the send to fail")
    await sender.send("after", 1, {})  # a new connection


async def test_a_stream_deleted_behind_the_streamers_back_is_made_again_on_send(
    rabbitmq_url: str, rabbit_streamer: RabbitEventStreamer
) -> None:
    topic = new_name("test")
    sender = await rabbit_streamer.new_sender(topic)
    await sender.send("first", 1, {})
    await delete_streams(rabbitmq_url, rabbit_streamer.connection.known_streams)

    await sender.send("second", 1, {})

    receiver = await rabbit_streamer.new_receiver(topic, new_name("reader"))
    (event,) = await within(receiver.recv(5), WAIT_TIMEOUT, "the event")
    assert event.foreign_id == "second"


async def test_a_process_that_dies_leaves_its_unacknowledged_events_to_the_next_receiver(
    rabbitmq_url: str, rabbit_streamer: RabbitEventStreamer
) -> None:
    # Given a receiver in another "process" (a streamer of its own) that acknowledged the
    # first of three events and dies (its connection cut, nothing closed)
    topic, name = new_name("test"), new_name("reader")
    prefix = rabbit_streamer.connection.options.prefix
    other = RabbitEventStreamer(with_options(rabbitmq_url, prefix=prefix))
    sender = await rabbit_streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(3)])
    doomed = await other.new_receiver(topic, name)
    held: list[Event] = []
    while len(held) < 3:
        held += await within(doomed.recv(3), WAIT_TIMEOUT, "the events")
    await doomed.ack(held[0])
    cursors = rabbit_streamer.connection.topic(topic).cursors
    await until_stored(rabbitmq_url, cursors, name, held[0].id)  # sent, not lost with the kill
    await _drop(other)

    # When another receiver of the name opens, then it gets the other two at once
    successor = await rabbit_streamer.new_receiver(topic, name)
    again: list[Event] = []
    while len(again) < 2:
        again += await within(successor.recv(3), WAIT_TIMEOUT, "the events again")
    assert [e.foreign_id for e in again] == ["1", "2"]
    await other.close()


async def test_each_receiver_reads_on_a_connection_of_its_own_closed_with_it(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given two receivers of one streamer, of one topic and of another
    topic = new_name("test")
    first = await rabbit_streamer.new_receiver(topic, new_name("reader"))
    second = await rabbit_streamer.new_receiver(new_name("test"), new_name("reader"))
    main = await rabbit_streamer.connection.client()
    clients = [first._reader._sub.client, second._reader._sub.client]

    # Then each has a connection of its own (the node delivers late to a connection
    # holding several subscriptions), not the streamer's main one
    assert clients[0] is not clients[1]
    assert main not in clients
    assert all(c.alive for c in clients)

    # And closing a receiver closes its connection, and only its own
    await first.close()
    assert not clients[0].alive
    assert clients[1].alive
    await second.close()
    assert not clients[1].alive
    assert main.alive


async def test_closing_the_streamer_leaves_no_task_behind(rabbitmq_url: str) -> None:
    before = asyncio.all_tasks()
    streamer = RabbitEventStreamer(with_options(rabbitmq_url, prefix=new_prefix(), heartbeat=2))
    topic = new_name("test")
    sender = await streamer.new_sender(topic)
    receiver = await streamer.new_receiver(topic, new_name("reader"))
    await sender.send("1", 1, {})
    await within(receiver.recv(), WAIT_TIMEOUT, "the event")
    made = streamer.connection.known_streams

    await streamer.close()

    assert asyncio.all_tasks() == before
    await delete_streams(rabbitmq_url, made)


async def test_a_receiver_reopened_after_everything_was_acknowledged_is_caught_up(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given a receiver that acknowledged all three events of its topic, and closed
    topic, name = new_name("test"), new_name("reader")
    sender = await rabbit_streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(3)])
    first = await rabbit_streamer.new_receiver(topic, name)
    events: list[Event] = []
    while len(events) < 3:
        events += await within(first.recv(3), WAIT_TIMEOUT, "the events")
    for event in events[1:] + events[:1]:  # the cursor moves only with the last ack
        await first.ack(event)
    await first.close()

    # When it opens again, then nothing is pending; a new event is, until handed out
    reopened = await rabbit_streamer.new_receiver(topic, name)
    assert reopened.pending() == 0
    await sender.send("3", 1, {})
    assert reopened.pending() > 0
    (event,) = await within(reopened.recv(3), WAIT_TIMEOUT, "the new event")
    assert (event.foreign_id, reopened.pending()) == ("3", 0)


async def test_events_another_process_sent_are_pending_once_they_arrive(
    rabbitmq_url: str, rabbit_streamer: RabbitEventStreamer
) -> None:
    topic = new_name("test")
    receiver = await rabbit_streamer.new_receiver(topic, new_name("reader"))
    prefix = rabbit_streamer.connection.options.prefix
    other = RabbitEventStreamer(with_options(rabbitmq_url, prefix=prefix))
    try:
        await (await other.new_sender(topic)).send("elsewhere", 1, {})

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_TIMEOUT
        while receiver.pending() == 0:  # pushed by the node: within a round trip
            assert loop.time() < deadline, "the other process's event never became pending"
            await asyncio.sleep(0.005)  # a condition poll with a deadline
    finally:
        await other.close()
    (event,) = await within(receiver.recv(3), WAIT_TIMEOUT, "the event")
    assert (event.foreign_id, receiver.pending()) == ("elsewhere", 0)


# --------------------------------------------------------------------------- copies


def _engine_headers(topic: str, run_id: str, version: int) -> dict[str, str]:
    return {Header.TOPIC: topic, Header.RUN_ID: run_id, Header.RECORD_VERSION: str(version)}


async def test_a_second_copy_of_an_engine_event_is_handed_out_by_no_receiver(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given an engine event sent twice (the relay sending again after a crash), with
    # another event between the copies, and an event without engine headers sent twice
    topic = new_name("test")
    sender = await rabbit_streamer.new_sender(topic)
    first = await rabbit_streamer.new_receiver(topic, new_name("shard-1"))
    second = await rabbit_streamer.new_receiver(topic, new_name("shard-2"))
    await sender.send("run-1", 1, _engine_headers(topic, "run-1", 2))
    await sender.send("run-2", 1, _engine_headers(topic, "run-2", 2))
    await sender.send("run-1", 1, _engine_headers(topic, "run-1", 2))  # the copy
    await sender.send("run-1", 1, _engine_headers(topic, "run-1", 3))  # the next write
    await sender.send_many([OutgoingEvent("plain", 1, {}), OutgoingEvent("plain", 1, {})])

    # Then every receiver hands out the first copy only (the same one: the same offset)
    for receiver in (first, second):
        events: list[Event] = []
        while len(events) < 5:
            events += await within(receiver.recv(10), WAIT_TIMEOUT, "the events")
        assert [(e.foreign_id, e.headers.get(Header.RECORD_VERSION)) for e in events] == [
            ("run-1", "2"),
            ("run-2", "2"),
            ("run-1", "3"),
            ("plain", None),
            ("plain", None),
        ]
        assert events[0].id == min(e.id for e in events)
        assert receiver.pending() == 0


async def test_a_receiver_opened_after_the_first_copy_still_skips_the_second(
    rabbitmq_url: str, rabbit_streamer: RabbitEventStreamer
) -> None:
    # Given a receiver name whose cursor is stored right after an engine event's first copy
    topic, name = new_name("test"), new_name("reader")
    sender = await rabbit_streamer.new_sender(topic)
    receiver = await rabbit_streamer.new_receiver(topic, name)
    await sender.send("run-1", 1, _engine_headers(topic, "run-1", 2))
    (original,) = await within(receiver.recv(), WAIT_TIMEOUT, "the first copy")
    await receiver.ack(original)
    await receiver.close()
    cursors = rabbit_streamer.connection.topic(topic).cursors
    await until_stored(rabbitmq_url, cursors, name, original.id)

    # When the copy follows, then a receiver opened again (it looks back before its
    # cursor) does not hand it out, and hands out what is new
    await sender.send("run-1", 1, _engine_headers(topic, "run-1", 2))
    await sender.send("run-2", 1, _engine_headers(topic, "run-2", 2))
    reopened = await rabbit_streamer.new_receiver(topic, name)
    events = await within(reopened.recv(10), WAIT_TIMEOUT, "the new event")
    assert [e.foreign_id for e in events] == ["run-2"]


# --------------------------------------------------------------------------- tails


def _tail_subscriptions(streamer: RabbitEventStreamer) -> int:
    """How many subscriptions the streamer's tails hold on its reading connection."""
    return len(streamer._tails._follows)


async def test_a_tail_fails_when_its_connection_drops_and_a_new_one_follows_the_topic(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given a tail waiting for its next batch
    topic = new_name("test")
    sender = await rabbit_streamer.new_sender(topic)
    tail = await rabbit_streamer.tail(topic)
    reading = asyncio.ensure_future(anext(tail))

    # When the connections drop under it
    await _drop(rabbit_streamer)

    # Then the waiting read fails (its user re-checks and opens a new tail), and a new
    # tail, on a new connection, hands out what is sent next
    with pytest.raises(AdapterError, match="tail of RabbitMQ topic"):
        await within(reading, WAIT_TIMEOUT, "the read to fail")
    await tail.close()
    again = await rabbit_streamer.tail(topic)
    await sender.send("after", 1, {})
    batch = await within(anext(again), WAIT_TIMEOUT, "the event after the drop")
    assert [e.foreign_id for e in batch.events] == ["after"]
    assert not batch.gap
    await again.close()


async def test_a_tail_dropped_without_close_ends_its_topics_subscription(
    rabbit_streamer: RabbitEventStreamer,
) -> None:
    # Given two tails of a topic, sharing one subscription
    topic = new_name("test")
    first, second = await rabbit_streamer.tail(topic), await rabbit_streamer.tail(topic)
    client = await rabbit_streamer.connection.client()
    subscriptions = len(client._subscriptions)
    assert _tail_subscriptions(rabbit_streamer) == 1

    # When one is closed and the other dropped without close
    await first.close()
    assert _tail_subscriptions(rabbit_streamer) == 1, "the other tail still reads"
    del first, second
    gc.collect()

    # Then the subscription ends once the last tail went (no offset reference to leave)
    stopping = set(rabbit_streamer._tails._stopping)
    assert stopping, "the last tail's going stopped nothing"
    await asyncio.wait(stopping, timeout=WAIT_TIMEOUT)
    assert _tail_subscriptions(rabbit_streamer) == 0
    assert len(client._subscriptions) == subscriptions - 1


async def test_closing_the_streamer_ends_its_tails_and_leaves_no_task_behind(
    rabbitmq_url: str,
) -> None:
    before = asyncio.all_tasks()
    streamer = RabbitEventStreamer(with_options(rabbitmq_url, prefix=new_prefix(), heartbeat=2))
    topic = new_name("test")
    tail = await streamer.tail(topic)
    await (await streamer.new_sender(topic)).send("1", 1, {})
    assert [e.foreign_id for e in (await within(anext(tail), WAIT_TIMEOUT, "a batch")).events] == [
        "1"
    ]
    reading = asyncio.ensure_future(anext(tail))
    made = streamer.connection.known_streams

    await streamer.close()

    with pytest.raises(StopAsyncIteration):
        await within(reading, WAIT_TIMEOUT, "the waiting read to end")
    assert asyncio.all_tasks() == before
    with pytest.raises(AdapterError, match="closed"):
        await streamer.tail(topic)
    await delete_streams(rabbitmq_url, made)


async def test_a_client_close_cancelled_while_it_waits_for_the_node_leaves_nothing_open(
    rabbitmq_url: str,
) -> None:
    # Given a live client (its heartbeat running) closing, waiting for the node's answer
    connection = RabbitConnection(with_options(rabbitmq_url, heartbeat=2))
    client = await connection.client()
    heartbeat = client._heartbeat
    assert heartbeat is not None
    assert not heartbeat.done()
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0)  # one turn: the task sends the close request and waits
    assert client._waiting, "the close is waiting for the node's answer"

    # When the close is cancelled there
    closing.cancel()
    await asyncio.gather(closing, return_exceptions=True)

    # Then the socket and the heartbeat are gone all the same
    transport = client._protocol.transport
    assert transport is not None
    assert transport.is_closing()
    assert heartbeat.done()
    assert not client.alive
    await connection.close()
