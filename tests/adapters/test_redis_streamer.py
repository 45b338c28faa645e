"""Redis Streams event streamer: the conformance suites, IDs that spread evenly over
shards, redelivery of a dead consumer's events, trimming, and a workflow run until idle.

Every test has a key prefix of its own (``open_redis``), deleted at the end.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _redis_support import open_redis, redis_url

from conveyor import AdapterUnavailable, Builder, Run, RunState
from conveyor.abc import Event, EventStreamer, OutgoingEvent
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler
from conveyor.adapters.redis import RedisClient, RedisEventStreamer
from conveyor.adaptertest import (
    EventStreamerSuite,
    ReportsPendingSuite,
    TailsTopicsSuite,
    new_name,
)
from conveyor.testing import run_until_idle

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    async with open_redis(redis_url) as opened:
        yield opened


class OnRedis:
    @pytest.fixture
    async def streamer(self, client: RedisClient) -> AsyncIterator[EventStreamer]:
        streamer = RedisEventStreamer(client)
        yield streamer
        await streamer.close()


class TestRedisEventStreamer(OnRedis, EventStreamerSuite):
    pass


class TestRedisReceiversReportPending(OnRedis, ReportsPendingSuite):
    pass


class TestRedisTails(OnRedis, TailsTopicsSuite):
    pass


# ---------------------------------------------------------------- IDs and shards


@pytest.mark.parametrize("shards", [2, 4])
async def test_event_ids_spread_evenly_over_shards(client: RedisClient, shards: int) -> None:
    # Given 1,000 events sent to a topic, one by one and in batches
    streamer = RedisEventStreamer(client)
    topic = new_name("spread")
    sender = await streamer.new_sender(topic)
    for i in range(0, 1000, 100):
        await sender.send(f"single-{i}", 1, {})
        await sender.send_many([OutgoingEvent(f"batch-{i + j}", 1, {}) for j in range(1, 100)])
    receiver = await streamer.new_receiver(topic, new_name("reader"))

    # When they are read
    events: list[Event] = []
    async with asyncio.timeout(10):
        while len(events) < 1000:
            events.extend(await receiver.recv(500))
    await streamer.close()

    # Then IDs are consecutive from 1, and each shard (id % n) gets its share within 2 %
    assert [e.id for e in events] == list(range(1, 1001))
    counts = Counter(e.id % shards for e in events)
    for shard in range(shards):
        assert abs(counts[shard] - 1000 / shards) <= 20, counts


# ---------------------------------------------------------------- redelivery across processes


async def test_a_dead_consumers_unacknowledged_events_are_claimed_by_another_process(
    redis_url: str, client: RedisClient
) -> None:
    # Given a receiver in one process that was handed two events and died without acking
    topic, name = new_name("claim"), new_name("reader")
    dead = RedisEventStreamer(client)
    sender = await dead.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(3)])
    first = await dead.new_receiver(topic, name)
    assert len(await first.recv(2)) == 2  # never acknowledged, never closed

    # When a receiver of the same name opens in another process (claiming after 0.2 s idle)
    async with open_redis(
        redis_url, prefix=client.options.key_prefix, cleanup=False, claim_idle=0.2
    ) as other_client:
        other = RedisEventStreamer(other_client)
        receiver = await other.new_receiver(topic, name)

        # Then it gets the third event, and the two once they are idle long enough
        got: list[Event] = []
        async with asyncio.timeout(5):
            while len(got) < 3:
                got.extend(await receiver.recv(10))
        assert sorted(e.foreign_id for e in got) == ["0", "1", "2"]
        await other.close()
    await dead.close()


async def test_a_closed_receivers_unacknowledged_events_go_to_another_process_at_once(
    redis_url: str, client: RedisClient
) -> None:
    # Given a receiver that was handed two events and closed without acknowledging them
    topic, name = new_name("release"), new_name("reader")
    first_streamer = RedisEventStreamer(client)
    sender = await first_streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(2)])
    first = await first_streamer.new_receiver(topic, name)
    assert len(await first.recv(2)) == 2
    await first.close()

    # When a receiver of that name opens in another process (claim_idle an hour)
    # Then it gets both without waiting for them to be idle
    assert await _another_process_gets(redis_url, client, topic, name, 2) == ["0", "1"]
    await first_streamer.close()


async def _another_process_gets(
    redis_url: str, client: RedisClient, topic: str, name: str, n: int
) -> list[str]:
    """The foreign IDs of the first ``n`` events a receiver ``name`` gets in another
    process (a client of its own, ``claim_idle`` an hour), within 5 s."""
    async with open_redis(
        redis_url, prefix=client.options.key_prefix, cleanup=False, claim_idle=3600.0
    ) as other_client:
        other = RedisEventStreamer(other_client)
        try:
            receiver = await other.new_receiver(topic, name)
            got: list[Event] = []
            async with asyncio.timeout(5):
                while len(got) < n:
                    got.extend(await receiver.recv(10))
        finally:
            await other.close()
    return sorted(e.foreign_id for e in got)


async def test_events_delivered_to_a_cancelled_read_go_to_another_process_at_once(
    redis_url: str, client: RedisClient
) -> None:
    # Given a receiver whose blocking read was cancelled after the server delivered two
    # events to it (a role hand-over cancels an idle receiver; the read's reply never came):
    # the same read, made by its consumer outside the receiver, delivers them unseen
    topic, name = new_name("unseen"), new_name("reader")
    first_streamer = RedisEventStreamer(client)
    sender = await first_streamer.new_sender(topic)
    first = await first_streamer.new_receiver(topic, name)
    reading = asyncio.ensure_future(first.recv(10))
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(2)])
    got_first = await reading
    for event in got_first:
        await first.ack(event)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(2, 4)])
    stream = client.options.keys.stream(topic)
    consumer = first._consumer
    unseen = await client.command(
        "test", "XREADGROUP", "GROUP", name, consumer, "COUNT", 10, "STREAMS", stream, ">"
    )
    assert unseen, "the events were not delivered to the receiver's consumer"

    # When it closes and a receiver of that name opens in another process (claim_idle an
    # hour)
    await first.close()
    # Then it gets both without waiting for them to be idle
    assert await _another_process_gets(redis_url, client, topic, name, 2) == ["2", "3"]
    await first_streamer.close()


async def test_events_an_unblocked_read_lost_are_handed_out_by_the_next_read(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver whose last read found an event, so that its next read goes without
    # BLOCK on the client's pipelined connection
    topic, name = new_name("unblocked"), new_name("reader")
    streamer = RedisEventStreamer(client)
    sender = await streamer.new_sender(topic)
    receiver = await streamer.new_receiver(topic, name)
    await sender.send("0", 1, {})
    async with asyncio.timeout(5):
        (first,) = await receiver.recv(10)
    await receiver.ack(first)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in (1, 2)])

    # When the server delivers two events to that read and its reply is lost
    command = client.command
    lost: list[Any] = []

    async def losing(what: str, *args: object) -> Any:
        reply = await command(what, *args)
        if args[0] == "XREADGROUP" and "BLOCK" not in args and args[-1] == ">" and not lost:
            lost.append(reply)
            raise AdapterUnavailable("reply lost (test)")
        return reply

    monkeypatch.setattr(client, "command", losing)
    with pytest.raises(AdapterUnavailable):
        await receiver.recv(10)
    assert len(lost) == 1
    assert lost[0], "the server delivered nothing to the read"

    # Then the next read hands both out (from the consumer's pending entries)
    async with asyncio.timeout(5):
        got = await receiver.recv(10)
    assert sorted(e.foreign_id for e in got) == ["1", "2"]
    await streamer.close()


# ---------------------------------------------------------------- acknowledgements


class _CountingAcks:
    """Records the ``XACK`` commands a client sends; fails the first ``fail`` of them."""

    def __init__(self, client: RedisClient, monkeypatch: pytest.MonkeyPatch, fail: int = 0):
        self.sent: list[list[str]] = []
        self.failures = fail
        self.go = asyncio.Event()  # XACKs wait for it
        self.go.set()
        command = client.command

        async def counting(what: str, *args: object) -> Any:
            if args[0] == "XACK":
                await self.go.wait()
                if self.failures:
                    self.failures -= 1
                    raise AdapterUnavailable("XACK lost (test)")
                self.sent.append([str(a) for a in args[3:]])
            return await command(what, *args)

        monkeypatch.setattr(client, "command", counting)


async def _pending(client: RedisClient, topic: str, name: str) -> int:
    summary = await client.command("test", "XPENDING", client.options.keys.stream(topic), name)
    return int(summary["pending"])


async def test_acks_made_while_one_is_in_flight_go_together_and_close_sends_the_rest(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver handed five events
    topic, name = new_name("acks"), new_name("reader")
    streamer = RedisEventStreamer(client)
    sender = await streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(5)])
    receiver = await streamer.new_receiver(topic, name)
    events = await receiver.recv(5)
    assert len(events) == 5
    acks = _CountingAcks(client, monkeypatch)

    # When all are acknowledged one after another, and the receiver closed at once
    for event in events:
        await receiver.ack(event)
    await receiver.close()

    # Then one XACK carried them all, and the group holds none of them pending
    assert acks.sent == [[f"{e.id}-0" for e in events]]
    assert await _pending(client, topic, name) == 0
    await streamer.close()


async def test_an_ack_that_failed_is_sent_again_with_the_next_one(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver handed two events, whose first XACK is lost
    topic, name = new_name("acks"), new_name("reader")
    streamer = RedisEventStreamer(client)
    sender = await streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(2)])
    receiver = await streamer.new_receiver(topic, name)
    first, second = await receiver.recv(2)
    acks = _CountingAcks(client, monkeypatch, fail=1)
    await receiver.ack(first)
    assert receiver._acking is not None
    await asyncio.wait({receiver._acking})
    assert acks.sent == []

    # When the second is acknowledged and the receiver closed
    await receiver.ack(second)
    await receiver.close()

    # Then both were acknowledged, the lost one again
    assert sorted(i for batch in acks.sent for i in batch) == [f"{first.id}-0", f"{second.id}-0"]
    assert await _pending(client, topic, name) == 0
    await streamer.close()


async def test_an_acked_event_is_not_handed_out_again_while_its_ack_is_in_flight(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a receiver that acknowledged an event whose XACK has not reached the server,
    # and whose blocked read was then cancelled (so it reads its pending entries again)
    topic, name = new_name("acks"), new_name("reader")
    streamer = RedisEventStreamer(client)
    sender = await streamer.new_sender(topic)
    await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(2)])
    receiver = await streamer.new_receiver(topic, name)
    first, _ = await receiver.recv(2)
    acks = _CountingAcks(client, monkeypatch)
    acks.go.clear()
    reading = asyncio.create_task(receiver.recv(5))
    await asyncio.sleep(0)  # the read starts
    await receiver.ack(first)
    reading.cancel()
    await asyncio.wait({reading})

    # When a new event is sent and the receiver reads again
    await sender.send("2", 1, {})
    async with asyncio.timeout(5):
        got = await receiver.recv(5)

    # Then it hands out the new event, not the acknowledged one
    assert [e.foreign_id for e in got] == ["2"]
    acks.go.set()
    await streamer.close()
    assert acks.sent == [[f"{first.id}-0"]]


# ---------------------------------------------------------------- trimming


async def _stream_ids(client: RedisClient, topic: str) -> list[int]:
    entries = await client.command("reading", "XRANGE", client.options.keys.stream(topic), "-", "+")
    return [int(raw_id.decode().partition("-")[0]) for raw_id, _ in entries]


async def test_trim_removes_what_every_group_acknowledged(redis_url: str) -> None:
    async with open_redis(redis_url, event_retention=0.0, trim_interval=0.0) as client:
        # Given five events, a group that acknowledged 1, 2 and 4, and one that acked all
        streamer = RedisEventStreamer(client)
        topic = new_name("trim")
        sender = await streamer.new_sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(1, 6)])
        slow = await streamer.new_receiver(topic, new_name("slow"))
        fast = await streamer.new_receiver(topic, new_name("fast"))
        events = list(await slow.recv(5))
        for event in events:
            if event.foreign_id in ("1", "2", "4"):
                await slow.ack(event)
        for event in await fast.recv(5):
            await fast.ack(event)

        # When the topic is trimmed (no retention)
        removed = await streamer.trim(topic)

        # Then the events before the slow group's first unacknowledged one are gone
        assert removed == 2
        assert await _stream_ids(client, topic) == [3, 4, 5]

        # And once it acknowledges the rest, everything delivered is
        for event in events:
            if event.foreign_id in ("3", "5"):
                await slow.ack(event)
        await streamer.trim(topic)
        assert await _stream_ids(client, topic) == []
        await streamer.close()


async def test_trim_keeps_events_younger_than_the_retention(redis_url: str) -> None:
    async with open_redis(redis_url, event_retention=3600.0, trim_interval=0.0) as client:
        # Given events every group acknowledged, sent just now
        streamer = RedisEventStreamer(client)
        topic = new_name("retained")
        sender = await streamer.new_sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(3)])
        receiver = await streamer.new_receiver(topic, new_name("reader"))
        for event in await receiver.recv(3):
            await receiver.ack(event)

        # When the topic is trimmed, then nothing goes: they are younger than an hour
        assert await streamer.trim(topic) == 0
        assert await _stream_ids(client, topic) == [1, 2, 3]
        await streamer.close()


# ---------------------------------------------------------------- a workflow


class _Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    CHECKED = 2
    DONE = 3


async def _check(run: Run[dict[str, int], _Status]) -> _Status:
    return _Status.CHECKED


async def _finish(run: Run[dict[str, int], _Status]) -> _Status:
    return _Status.DONE


async def test_run_until_idle_sees_the_streamers_receivers_caught_up(client: RedisClient) -> None:
    # Given a workflow of two steps (sharded) on the streamer, the rest in memory
    streamer = RedisEventStreamer(client)
    b = Builder(f"idle-{uuid.uuid4().hex[:12]}", dict, _Status)
    b.add_step(_Status.STARTED, _check, _Status.CHECKED).with_options(parallel_count=3)
    b.add_step(_Status.CHECKED, _finish, _Status.DONE)
    store = MemoryRecordStore()
    wf = b.build(streamer, store, MemoryRoleScheduler())
    async with wf:
        # When runs are triggered and run_until_idle returns (it asks the receivers)
        run_ids = [await wf.trigger(f"user-{i}") for i in range(10)]
        await run_until_idle(wf, timeout=10.0)

        # Then every run had completed
        for run_id in run_ids:
            record = await store.lookup(run_id)
            assert (record.status, record.run_state) == (_Status.DONE, RunState.COMPLETED)
    await streamer.close()
