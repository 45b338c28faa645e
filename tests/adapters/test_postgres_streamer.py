"""The PostgreSQL event log beyond the suite: gap-free reads, push wake-ups, pruning.

"Another process" is another ``PostgresDatabase`` (its own pool and LISTEN connection).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import AsyncIterator

import pytest
from _pg_support import open_database, pg_url

from conveyor.abc import Event, OutgoingEvent
from conveyor.adapters.postgres import PostgresDatabase, PostgresEventStreamer, Pruner
from conveyor.adaptertest._fixtures import new_name

__all__ = ["pg_url"]

SCHEMA = "streamer_tests"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    async with open_database(pg_url, SCHEMA) as database:
        assert await database.wait_listening(5.0)
        yield database


@pytest.fixture
async def other_db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    """A second process's connections (pool and listener) to the same schema."""
    async with open_database(pg_url, SCHEMA, poll_interval=30.0) as database:
        assert await database.wait_listening(5.0)
        yield database


def _event(fid: str, topic: str) -> OutgoingEvent:
    return OutgoingEvent(fid, 1, {"topic": topic})


async def _wait_for_a_lock_wait(db: PostgresDatabase, blocker: int) -> None:
    """Wait until some session waits for a lock held by the session ``blocker``."""
    async with asyncio.timeout(5.0):
        while True:
            rows = await db.fetch(
                "test",
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                blocker,
            )
            if rows:
                return
            await asyncio.sleep(0.01)


async def _collect(receiver: object, count: int, timeout: float = 10.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            events.extend(await receiver.recv(count - len(events)))  # type: ignore[attr-defined]
    return events


# ---------------------------------------------------------------- gap-free reads


async def test_a_late_committing_send_is_never_skipped(db: PostgresDatabase) -> None:
    # Given a send inside a transaction that stays open
    streamer = PostgresEventStreamer(db)
    topic = new_name("gap")
    receiver = await streamer.new_receiver(topic, new_name("reader"))
    sender = await streamer.new_sender(topic)
    early = await db.connect()
    try:
        tx = early.transaction()
        await tx.start()
        await streamer.send_in(early, topic, [_event("early", topic)])

        # When a second send starts after it and a reader looks meanwhile
        late = asyncio.create_task(sender.send("late", 1, {"topic": topic}))
        await _wait_for_a_lock_wait(db, early.get_server_pid())
        assert not late.done(), "a second send to the topic committed past an open one"
        rows = await db.fetch("test", f"SELECT id FROM {db.tables.events} WHERE topic = $1", topic)
        assert rows == [], "an event of the topic is visible while a lower ID is not"

        # Then once the first commits, both arrive in order, the first one first
        await tx.commit()
        await asyncio.wait_for(late, 5.0)
        events = await _collect(receiver, 2)
    finally:
        await early.close()
        await receiver.close()
        await streamer.close()
    assert [e.foreign_id for e in events] == ["early", "late"]
    assert events[0].id < events[1].id


async def test_concurrent_senders_committing_in_any_order_lose_nothing(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given eight writers whose transactions stay open for random times
    topic = new_name("race")
    writer_streamer = PostgresEventStreamer(db)
    reader_streamer = PostgresEventStreamer(other_db)
    receiver = await reader_streamer.new_receiver(topic, new_name("reader"))
    rng = random.Random(7)
    per_writer = 25

    async def writer(w: int) -> None:
        conn = await db.connect()
        try:
            for i in range(per_writer):
                async with conn.transaction():
                    await writer_streamer.send_in(conn, topic, [_event(f"{w}-{i}", topic)])
                    await asyncio.sleep(rng.random() * 0.004)
        finally:
            await conn.close()

    # When a reader consumes (and acknowledges) while they write
    received: list[Event] = []

    async def reader() -> None:
        while len(received) < 8 * per_writer:
            for event in await receiver.recv(16):
                received.append(event)
                await receiver.ack(event)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(8)))
    await asyncio.wait_for(reading, 20.0)
    await receiver.close()
    await reader_streamer.close()
    await writer_streamer.close()

    # Then every event arrived exactly once, in ID order, with no gap
    ids = [e.id for e in received]
    assert ids == list(range(1, 8 * per_writer + 1))
    assert len({e.foreign_id for e in received}) == 8 * per_writer


# ---------------------------------------------------------------- wake-ups


async def test_receivers_in_another_process_are_woken_by_notify(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given a receiver in another process that would poll only every 30 s
    topic = new_name("wake")
    sending = PostgresEventStreamer(db)
    receiving = PostgresEventStreamer(other_db)
    receiver = await receiving.new_receiver(topic, new_name("reader"), poll_interval=30.0)
    sender = await sending.new_sender(topic)
    latencies = []
    try:
        for i in range(20):
            pending = asyncio.create_task(receiver.recv())
            await asyncio.sleep(0.01)  # the receiver is waiting
            started = time.perf_counter()
            await sender.send(str(i), 1, {"topic": topic})
            (event,) = await asyncio.wait_for(pending, 5.0)
            latencies.append(time.perf_counter() - started)
            assert event.foreign_id == str(i)
    finally:
        await receiver.close()
        await receiving.close()
        await sending.close()
    # Then each wake-up took milliseconds (a notification, not the 30 s poll)
    assert statistics.median(latencies) < 0.05, latencies
    assert other_db.notifications >= 20


async def test_a_killed_listener_reconnects_and_reads_what_it_missed(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given a receiver in another process, waiting
    topic = new_name("killed")
    sending = PostgresEventStreamer(db)
    receiving = PostgresEventStreamer(other_db)
    receiver = await receiving.new_receiver(topic, new_name("reader"))
    sender = await sending.new_sender(topic)
    pending = asyncio.create_task(receiver.recv(10))
    await asyncio.sleep(0.05)
    connections = other_db.listener_connections

    # When its LISTEN connection is terminated and an event is sent meanwhile
    async with db.connection("test") as conn:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", other_db.listener_pid)
    await sender.send("while-down", 1, {"topic": topic})

    # Then the receiver gets it, the listener is back, and later sends wake it again
    try:
        events = await asyncio.wait_for(pending, 10.0)
        assert [e.foreign_id for e in events] == ["while-down"]
        assert await other_db.wait_listening(10.0)
        assert other_db.listener_connections > connections
        pending = asyncio.create_task(receiver.recv(10))
        await asyncio.sleep(0.05)
        await sender.send("after", 1, {"topic": topic})
        events = await asyncio.wait_for(pending, 2.0)
        assert [e.foreign_id for e in events] == ["after"]
    finally:
        await receiver.close()
        await receiving.close()
        await sending.close()


async def test_receivers_poll_while_the_listener_is_down(pg_url: str, db: PostgresDatabase) -> None:
    # Given a process whose listener is down (stopped, so it cannot come back)
    async with open_database(pg_url, SCHEMA, poll_interval=0.2) as deaf:
        assert await deaf.wait_listening(5.0)
        assert deaf._listener is not None
        deaf._listener.cancel()
        await asyncio.wait({deaf._listener})
        assert not deaf.listening
        topic = new_name("deaf")
        receiving = PostgresEventStreamer(deaf)
        sending = PostgresEventStreamer(db)
        receiver = await receiving.new_receiver(topic, new_name("reader"), poll_interval=0.2)
        pending = asyncio.create_task(receiver.recv())
        await asyncio.sleep(0.05)

        # When another process sends
        await (await sending.new_sender(topic)).send("polled", 1, {"topic": topic})

        # Then the receiver finds it by polling, within about one poll interval
        started = time.perf_counter()
        events = await asyncio.wait_for(pending, 5.0)
        assert [e.foreign_id for e in events] == ["polled"]
        assert time.perf_counter() - started < 1.0
        await receiver.close()
        await receiving.close()
        await sending.close()


# ---------------------------------------------------------------- cursors and pruning


async def test_receivers_that_never_ack_leave_no_rows(db: PostgresDatabase) -> None:
    streamer = PostgresEventStreamer(db)
    topic = new_name("await")
    name = new_name("await-run")
    await (await streamer.new_sender(topic)).send("x", 1, {"topic": topic})
    receiver = await streamer.new_receiver(topic, name, stream_from_latest=True)
    await (await streamer.new_sender(topic)).send("y", 1, {"topic": topic})
    assert [e.foreign_id for e in await receiver.recv(5)] == ["y"]
    await receiver.close()
    await streamer.close()

    rows = await db.fetch(
        "test", f"SELECT count(*) FROM {db.tables.cursors} WHERE topic = $1", topic
    )
    assert rows[0][0] == 0


async def test_pruning_deletes_consumed_events_dead_cursors_and_finished_timeouts(
    pg_url: str,
) -> None:
    async with open_database(
        pg_url,
        "prune_tests",
        fresh=True,
        event_retention=0.0,
        cursor_retention=3600.0,
        timeout_retention=0.0,
        unread_event_retention=3600.0,
    ) as db:
        streamer = PostgresEventStreamer(db)
        t = db.tables
        consumed, unread = new_name("consumed"), new_name("unread")
        await (await streamer.new_sender(consumed)).send_many(
            [_event(str(i), consumed) for i in range(10)]
        )
        await (await streamer.new_sender(unread)).send_many(
            [_event(str(i), unread) for i in range(3)]
        )
        # Two readers of one topic: one read everything, the other the first four.
        fast = await streamer.new_receiver(consumed, "fast")
        for event in await _collect(fast, 10):
            await fast.ack(event)
        slow = await streamer.new_receiver(consumed, "slow")
        for event in await _collect(slow, 4):
            await slow.ack(event)
        await fast.close()
        await slow.close()
        # A cursor nobody wrote for two hours is dead.
        async with db.connection("test") as conn:
            await conn.execute(
                f"INSERT INTO {t.cursors} (topic, name, position, updated_at) "
                "VALUES ($1, 'gone', 0, now() - interval '2 hours')",
                consumed,
            )
            await conn.execute(
                f"INSERT INTO {t.timeouts} (workflow_name, foreign_id, run_id, status, "
                "expire_at, created_at, record_version, idx, completed_at) VALUES "
                "('w', 'f', 'done', 1, now(), now(), 1, 0, now() - interval '1 minute'), "
                "('w', 'f', 'open', 1, now(), now(), 1, 0, NULL)"
            )

        deleted = await Pruner(db).prune()

        assert deleted is not None
        assert deleted["cursors"] == 1
        assert deleted["events"] == 4  # every cursor passed 1..4; the slow one is at 4
        assert deleted["unread_events"] == 0  # unread events are kept for an hour
        assert deleted["timeouts"] == 1
        async with db.connection("test") as conn:
            left = await conn.fetch(
                f"SELECT topic, id FROM {t.events} ORDER BY topic, id",
            )
            runs = await conn.fetch(f"SELECT run_id FROM {t.timeouts}")
        assert [r["id"] for r in left if r["topic"] == consumed] == list(range(5, 11))
        assert len([r for r in left if r["topic"] == unread]) == 3
        assert [r["run_id"] for r in runs] == ["open"]
        # The slow reader resumes where it was.
        slow = await streamer.new_receiver(consumed, "slow")
        assert [e.id for e in await _collect(slow, 6)] == list(range(5, 11))
        await slow.close()
        await streamer.close()
