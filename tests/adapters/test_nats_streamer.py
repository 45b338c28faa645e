"""The NATS JetStream event streamer: the conformance suites, names, layout, reconnects."""

from __future__ import annotations

import asyncio
import enum
import gc
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import nats
import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options
from nats.js.api import StreamConfig

from conveyor import Builder, Run, RunState
from conveyor.abc import AdapterError, AdapterUnavailable, Delivery, Event, EventStreamer, Header
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler
from conveyor.adapters.nats import NatsEventStreamer
from conveyor.adaptertest import (
    EventStreamerSuite,
    ReportsPendingSuite,
    TailsTopicsSuite,
    new_name,
)
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT
from conveyor.testing import run_until_idle

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats


@pytest.fixture
async def nats_streamer(nats_url: str) -> AsyncIterator[NatsEventStreamer]:
    prefix = new_prefix()
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix))
    try:
        yield streamer
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


class TestNatsEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


class TestNatsReportsPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


class TestNatsTailsTopics(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


def test_the_streamer_delivers_per_event() -> None:
    assert NatsEventStreamer.delivery is Delivery.PER_EVENT


# --------------------------------------------------------------------------- layout


async def test_a_topic_interleaved_with_another_splits_evenly_over_shards(
    nats_streamer: NatsEventStreamer,
) -> None:
    # Given 1,000 events on one topic sent in turn with 1,000 on another topic of the
    # same workflow (what a relay does when each run moves on at once)
    mine, other = new_name("wf-1"), new_name("wf-2")
    to_mine, to_other = await nats_streamer.new_sender(mine), await nats_streamer.new_sender(other)
    receiver = await nats_streamer.new_receiver(mine, new_name("reader"))
    for i in range(1000):
        await to_mine.send(f"run-{i}", 1, {})
        await to_other.send(f"run-{i}", 2, {})

    # When its receiver reads them all
    events: list[Event] = []
    async with asyncio.timeout(WAIT_TIMEOUT):
        while len(events) < 1000:
            events.extend(await receiver.recv(500))
    await receiver.close()

    # Then the engine's shards (id % n) get exactly equal shares for n = 2 and 4
    ids = [e.id for e in events]
    for n in (2, 4):
        assert Counter(i % n for i in ids) == dict.fromkeys(range(n), 1000 // n)


async def test_in_a_stream_shared_by_two_topics_one_topics_sequences_would_all_go_to_one_shard(
    nats_url: str,
) -> None:
    # Why a stream per topic, measured: a workflow's stream with a subject per topic,
    # events sent to the two subjects in turn
    prefix = new_prefix("l")
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=f"{prefix}_wf", subjects=[f"{prefix}.wf.*"]))
        sequences = []
        for _ in range(1000):
            sequences.append((await js.publish(f"{prefix}.wf.one", b"")).seq)
            await js.publish(f"{prefix}.wf.two", b"")

        # Then topic "one" holds only odd sequences: two shards by id % 2 would give one
        # shard every event and the other none (four shards: two of them idle)
        assert Counter(s % 2 for s in sequences) == {1: 1000}
        assert Counter(s % 4 for s in sequences) == {1: 500, 3: 500}
    finally:
        await nc.close()
        await delete_prefix(nats_url, prefix)


# --------------------------------------------------------------------------- reconnects


async def _reconnected(streamer: NatsEventStreamer) -> asyncio.Event:
    """An event set after the streamer's connection next comes back."""
    back = asyncio.Event()

    async def hook() -> None:
        back.set()

    streamer.connection.on_reconnect(hook)
    return back


async def test_a_dropped_connection_loses_no_event_and_the_receiver_goes_on(
    nats_streamer: NatsEventStreamer,
) -> None:
    # Given a receiver holding ten events it has not acknowledged
    topic = new_name("test")
    sender = await nats_streamer.new_sender(topic)
    receiver = await nats_streamer.new_receiver(topic, new_name("reader"))
    sent: list[str] = []

    async def send(i: int) -> None:
        fid = f"run-{i}"
        headers: dict[str, str] = {Header.RUN_ID: fid, Header.RECORD_VERSION: "1"}  # deduplicated
        while True:
            try:
                await sender.send(fid, 1, headers)
                break
            except AdapterError:  # unavailable while reconnecting: the relay would retry
                await asyncio.sleep(0.05)
        sent.append(fid)

    for i in range(10):
        await send(i)
    held: list[Event] = []
    async with asyncio.timeout(WAIT_TIMEOUT):
        while len(held) < 10:
            held.extend(await receiver.recv(10))

    # When the connection drops while a sender keeps sending and the receiver reads on
    back = await _reconnected(nats_streamer)
    stop = asyncio.Event()

    async def keep_sending() -> None:
        i = 10
        while not stop.is_set() or i < 200:
            await send(i)
            i += 1

    sending = asyncio.create_task(keep_sending())
    try:
        await asyncio.sleep(0)
        nc, _ = await nats_streamer.connection.client()
        await nc.force_reconnect()
        async with asyncio.timeout(WAIT_TIMEOUT):
            await back.wait()
        stop.set()
        async with asyncio.timeout(WAIT_TIMEOUT):
            await sending
    finally:
        sending.cancel()

    # Then the receiver hands out every event sent after the ten, once, and the ten it held
    # are still its own to acknowledge
    later: list[Event] = []
    async with asyncio.timeout(WAIT_TIMEOUT):
        while len(later) < len(sent) - 10:
            later.extend(await receiver.recv(100))
    assert [e.foreign_id for e in held + later] == sent
    for event in held + later:
        await receiver.ack(event)
    assert receiver.pending() == 0
    await receiver.close()

    # And a receiver opened again under its name gets nothing again: every ack counted
    reopened = await nats_streamer.new_receiver(topic, receiver.name)
    await sender.send("marker", 1, {})
    async with asyncio.timeout(WAIT_TIMEOUT):
        assert [e.foreign_id for e in await reopened.recv(100)] == ["marker"]
    await reopened.close()


async def test_a_tail_reports_a_gap_after_a_reconnect_and_goes_on(
    nats_streamer: NatsEventStreamer,
) -> None:
    # Given a tail of a topic
    topic = new_name("test")
    tail = await nats_streamer.tail(topic)
    sender = await nats_streamer.new_sender(topic)

    # When the connection drops and comes back, and an event is sent
    back = await _reconnected(nats_streamer)
    nc, _ = await nats_streamer.connection.client()
    await nc.force_reconnect()
    async with asyncio.timeout(WAIT_TIMEOUT):
        await back.wait()
    await sender.send("after", 1, {})

    # Then the tail first says it may have missed events, then hands the event out
    events: list[Event] = []
    gaps = []
    async with asyncio.timeout(WAIT_TIMEOUT):
        while not events:
            batch = await tail.__anext__()
            gaps.append(batch.gap)
            events.extend(batch.events)
    assert gaps[0] is True
    assert [e.foreign_id for e in events] == ["after"]
    await tail.close()


# --------------------------------------------------------------------------- sending


async def test_a_send_the_server_refuses_fails_at_once_and_is_not_unavailable(
    nats_url: str,
) -> None:
    # Given a streamer waiting long for acknowledgements, which sent to a topic once
    prefix = new_prefix()
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix, request_timeout=60))
    try:
        topic = new_name("test")
        sender = await streamer.new_sender(topic)
        await sender.send("first", 1, {})

        # When the topic's stream is replaced behind its back by one of another name
        where = streamer.connection.topic(topic)
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            await js.delete_stream(where.stream)
            await js.add_stream(
                StreamConfig(name=f"{where.stream}_other", subjects=[where.subject])
            )

            # Then a send fails at once (the server refused it: not worth a retry), long
            # before the acknowledgement's timeout
            with pytest.raises(AdapterError) as refused:
                async with asyncio.timeout(WAIT_TIMEOUT):
                    await sender.send("second", 1, {})
            assert not isinstance(refused.value, AdapterUnavailable)
            await js.delete_stream(f"{where.stream}_other")
        finally:
            await nc.close()
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


async def test_a_stream_deleted_behind_the_streamers_back_is_made_again_by_the_next_send(
    nats_streamer: NatsEventStreamer, nats_url: str
) -> None:
    # Given a topic with a receiver and an event sent
    topic = new_name("test")
    sender = await nats_streamer.new_sender(topic)
    await sender.send("first", 1, {})

    # When its stream is deleted behind the streamer's back
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_stream(nats_streamer.connection.topic(topic).stream)
    finally:
        await nc.close()

    # Then the next send fails as unavailable (no stream answered), the one after makes the
    # stream again, and a new receiver reads what was sent to it
    with pytest.raises(AdapterUnavailable):
        async with asyncio.timeout(WAIT_TIMEOUT):
            await sender.send("lost", 1, {})
    await sender.send("again", 1, {})
    receiver = await nats_streamer.new_receiver(topic, new_name("reader"))
    async with asyncio.timeout(WAIT_TIMEOUT):
        assert [e.foreign_id for e in await receiver.recv(10)] == ["again"]
    await receiver.close()


async def test_a_receiver_whose_pull_came_before_the_server_told_its_consumer_looks_again_soon(
    nats_url: str,
) -> None:
    # Given a receiver that looks again by itself only every minute
    prefix = new_prefix()
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix, recheck_interval=60))
    try:
        topic = new_name("test")
        receiver = await streamer.new_receiver(topic, new_name("reader"))
        where = streamer.connection.topic(topic)
        reader = receiver._reader

        # When its streamer learns that event 1 was stored (as from a publish's
        # acknowledgement) and the pull its doorbell makes finds nothing (the server tells
        # consumers about a stored message asynchronously: here it is not even stored yet)
        streamer._saw(where.stream, 1)
        await reader._pull()  # the pull the doorbell makes
        async with asyncio.timeout(WAIT_TIMEOUT):
            await reader._ended.wait()
        assert reader.buffered == 0
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().publish(where.subject, b'["late", 1, {}]')  # no doorbell
        finally:
            await nc.close()

        # Then it looks again soon by itself and hands the event out
        async with asyncio.timeout(WAIT_TIMEOUT):
            assert [e.foreign_id for e in await receiver.recv(10)] == ["late"]
        await receiver.close()
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


async def test_a_doorbell_from_elsewhere_tells_a_receiver_which_events_exist(
    nats_url: str,
) -> None:
    # Given a receiver that looks again by itself only every minute, and another streamer
    # (another process) on the topic
    prefix = new_prefix()
    here = NatsEventStreamer(with_options(nats_url, prefix=prefix, recheck_interval=60))
    elsewhere = NatsEventStreamer(with_options(nats_url, prefix=prefix))
    try:
        topic = new_name("test")
        receiver = await here.new_receiver(topic, new_name("reader"))
        where = here.connection.topic(topic)
        reader = receiver._reader
        await reader._pull()
        async with asyncio.timeout(WAIT_TIMEOUT):
            await reader._ended.wait()
        assert receiver.pending() == 0

        # When the other streamer rings the doorbell for event 1 (its publish acknowledged)
        # before the receiver's consumer can hand it out (here: not even stored yet)
        reader._arrived.clear()
        elsewhere._saw(where.stream, 1)
        await elsewhere._ring(await elsewhere.connection.ensure(topic))
        async with asyncio.timeout(WAIT_TIMEOUT):
            await reader._arrived.wait()

        # Then the receiver counts the event as pending, and when the pull the doorbell
        # made finds nothing, it looks again soon by itself and hands the event out
        assert receiver.pending() == 1
        await reader._pull()
        async with asyncio.timeout(WAIT_TIMEOUT):
            await reader._ended.wait()
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().publish(where.subject, b'["late", 1, {}]')  # no doorbell
        finally:
            await nc.close()
        async with asyncio.timeout(WAIT_TIMEOUT):
            assert [e.foreign_id for e in await receiver.recv(10)] == ["late"]
        await receiver.close()
    finally:
        await elsewhere.close()
        await here.close()
        await delete_prefix(nats_url, prefix)


# --------------------------------------------------------------------------- the engine


class _Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    CHECKED = 2
    DONE = 3


async def _check(run: Run[dict[str, str], _Status]) -> _Status:
    return _Status.CHECKED


async def _finish(run: Run[dict[str, str], _Status]) -> _Status:
    return _Status.DONE


async def test_run_until_idle_sees_the_streamers_receivers_caught_up(
    nats_streamer: NatsEventStreamer,
) -> None:
    # Given a workflow of two steps (sharded three ways) on the streamer, the rest in memory
    b = Builder(f"idle {uuid.uuid4().hex[:12]}", dict, _Status)  # a space in the name
    b.add_step(_Status.STARTED, _check, _Status.CHECKED).with_options(parallel_count=3)
    b.add_step(_Status.CHECKED, _finish, _Status.DONE)
    store = MemoryRecordStore()
    wf = b.build(nats_streamer, store, MemoryRoleScheduler())
    async with wf:
        # When runs are triggered and run_until_idle returns (it asks the receivers)
        run_ids = [await wf.trigger(f"user-{i}") for i in range(10)]
        await run_until_idle(wf, timeout=10.0)

        # Then every run had completed
        for run_id in run_ids:
            record = await store.lookup(run_id)
            assert (record.status, record.run_state) == (_Status.DONE, RunState.COMPLETED)


async def _consumers(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.consumer_count)
    finally:
        await nc.close()


async def test_a_tail_dropped_without_close_leaves_no_consumer_behind(
    nats_streamer: NatsEventStreamer, nats_url: str
) -> None:
    # Given two tails of a topic, sharing one ephemeral consumer
    topic = new_name("test")
    stream = nats_streamer.connection.topic(topic).stream
    first, second = await nats_streamer.tail(topic), await nats_streamer.tail(topic)
    assert await _consumers(nats_url, stream) == 1

    # When one is closed and the other dropped without close
    await first.close()
    del first, second
    gc.collect()

    # Then its consumer is deleted once the last tail went (no cursor, nothing left)
    stopping = set(nats_streamer._tails._stopping)  # the hub stopping in the background
    assert stopping, "the last tail's going stopped nothing"
    await asyncio.wait(stopping, timeout=WAIT_TIMEOUT)
    assert await _consumers(nats_url, stream) == 0


async def test_a_receiver_at_max_ack_pending_waits_for_room_and_leaves_no_pull_on_the_server(
    nats_url: str,
) -> None:
    # Given a receiver whose consumer allows 3 unacknowledged events, holding 3 of 10
    prefix = new_prefix()
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix, max_ack_pending=3))
    try:
        topic, name = new_name("wf-1"), new_name("reader")
        sender = await streamer.new_sender(topic)
        for i in range(10):
            await sender.send(f"run-{i}", 1, {})
        receiver = await streamer.new_receiver(topic, name)
        held: list[Event] = []
        while len(held) < 3:
            held += await receiver.recv(10)
        assert len(held) == 3

        # When it is asked for more
        more = asyncio.ensure_future(receiver.recv(10))
        reader = receiver._reader
        async with asyncio.timeout(WAIT_TIMEOUT):
            await reader._starved.wait()

        # Then it waits for room without a pull: none is kept waiting on the server
        # (asked on the receiver's own connection, so after anything it sent)
        _, js = await streamer.connection.client()
        stream = streamer.connection.topic(topic).stream
        info = await js.consumer_info(stream, reader.consumer)
        assert (info.num_waiting, info.num_ack_pending) == (0, 3)
        assert not more.done()

        # ... an acknowledgement makes room for exactly one more
        await receiver.ack(held.pop(0))
        async with asyncio.timeout(WAIT_TIMEOUT):
            held += await more
        assert len(held) == 3

        # ... and once it closes, the next receiver of the name gets the other 9 at once
        await receiver.close()
        info = await js.consumer_info(stream, reader.consumer)
        assert info.num_waiting == 0
        after = await streamer.new_receiver(topic, name)
        seen: set[str] = set()
        async with asyncio.timeout(WAIT_TIMEOUT):
            while len(seen) < 9:
                for event in await after.recv(10):
                    seen.add(event.foreign_id)
                    await after.ack(event)
        assert seen == {f"run-{i}" for i in range(1, 10)}
        await after.close()
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)
