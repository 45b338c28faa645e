"""The PostgreSQL event log beyond the suite: gap-free reads, push wake-ups, tails, pruning.

"Another process" is another ``PostgresDatabase`` (its own pool and LISTEN connection).
A receiver is known to be waiting when it reports nothing pending, or when its database
has answered its read with no rows: no test sleeps to let it get there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from _pg_support import open_database, pg_url

from conveyor.abc import Event, OutgoingEvent, TailBatch
from conveyor.adapters.postgres import (
    PostgresDatabase,
    PostgresEventReceiver,
    PostgresEventStreamer,
    PostgresOptions,
    PostgresTail,
    Pruner,
)
from conveyor.adaptertest import new_name

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

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
    """Wait until some session waits for a lock held by the session ``blocker``.

    Polled: the server shows lock waits only in ``pg_stat_activity``.
    """
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


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once ``condition()`` holds: polled, for in-process state that has no
    awaitable form."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


async def _waiting(receiver: PostgresEventReceiver) -> asyncio.Task[Sequence[Event]]:
    """Start ``receiver.recv(10)`` and return once it waits for a wake-up: it has read to
    the end of its topic and nothing new is announced (``pending()`` is 0).

    From then on only a notification (or the receiver's next look, its ``poll_interval``
    away) can bring it an event.
    """
    task = asyncio.create_task(receiver.recv(10))
    await _until(lambda: task.done() or receiver.pending() == 0)
    return task


class _Looks:
    """Counts a receiver's reads of its topic (through its database's ``fetch``) and
    signals the first that found nothing."""

    def __init__(self, db: PostgresDatabase, topic: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.found_nothing = asyncio.Event()
        fetch = db.fetch

        async def counting(what: str, sql: str, *args: object) -> Any:
            rows = await fetch(what, sql, *args)
            if topic in args:
                self.count += 1
                if not rows:
                    self.found_nothing.set()
            return rows

        monkeypatch.setattr(db, "fetch", counting)


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
                    # Random jitter to vary the commit order; it proves nothing by itself.
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
    # Given a receiver in another process that would look again only after 30 s
    topic = new_name("wake")
    sending = PostgresEventStreamer(db)
    receiving = PostgresEventStreamer(other_db)
    receiver = await receiving.new_receiver(topic, new_name("reader"), poll_interval=30.0)
    sender = await sending.new_sender(topic)
    try:
        for i in range(20):
            # ... and waits, having read to the end
            pending = await _waiting(receiver)
            # When an event is sent
            await sender.send(str(i), 1, {"topic": topic})
            # Then the receiver gets it well before it would have looked again (5 s of 30):
            # a notification woke it
            (event,) = await asyncio.wait_for(pending, 5.0)
            assert event.foreign_id == str(i)
    finally:
        await receiver.close()
        await receiving.close()
        await sending.close()
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
    pending = await _waiting(receiver)
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
        pending = await _waiting(receiver)
        await sender.send("after", 1, {"topic": topic})
        events = await asyncio.wait_for(pending, 2.0)  # it would look again only after 30 s
        assert [e.foreign_id for e in events] == ["after"]
    finally:
        await receiver.close()
        await receiving.close()
        await sending.close()


async def test_receivers_poll_while_the_listener_is_down(
    pg_url: str, db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_database(pg_url, SCHEMA, poll_interval=0.2) as deaf:
        # Given a process whose listener is down and does not come back (its connection
        # is terminated and a new one for it never opens: a failing attempt would wake
        # the receivers, and this test is about their own looks)
        assert await deaf.wait_listening(5.0)
        connect = deaf.connect

        async def no_listener(**settings: str) -> Any:
            if settings.get("application_name") == "conveyor-listener":
                await asyncio.Event().wait()  # never connects (cancelled at close)
            return await connect(**settings)

        monkeypatch.setattr(deaf, "connect", no_listener)
        async with db.connection("test") as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", deaf.listener_pid)
        await _until(lambda: not deaf.listening)
        # ... and a receiver there (polling every 0.2 s) that looked and found nothing
        topic = new_name("deaf")
        receiving = PostgresEventStreamer(deaf)
        sending = PostgresEventStreamer(db)
        receiver = await receiving.new_receiver(topic, new_name("reader"), poll_interval=0.2)
        looks = _Looks(deaf, topic, monkeypatch)
        pending = asyncio.create_task(receiver.recv())
        await asyncio.wait_for(looks.found_nothing.wait(), 5.0)
        looked = looks.count

        # When another process sends
        await (await sending.new_sender(topic)).send("polled", 1, {"topic": topic})

        # Then the receiver finds it by looking again (a receiver waiting for a wake-up,
        # as while listening, would look again only after 60 s)
        events = await asyncio.wait_for(pending, 5.0)
        assert [e.foreign_id for e in events] == ["polled"]
        assert looks.count > looked
        assert not deaf.listening
        await receiver.close()
        await receiving.close()
        await sending.close()


# ---------------------------------------------------------------- tails


async def _waiting_tail(tail: PostgresTail) -> asyncio.Future[TailBatch]:
    """Start the tail's next read and return once it waits for a wake-up (it looked and
    found nothing): from then on only a signal (or its next look, 60 s away while the
    listener is up) brings it a batch."""
    pending = asyncio.ensure_future(anext(tail))
    await _until(lambda: pending.done() or tail._waiting)
    return pending


async def _backends(db: PostgresDatabase) -> set[int]:
    rows = await db.fetch(
        "test", "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    return {row["pid"] for row in rows}


async def test_a_tail_reports_a_gap_when_its_listen_connection_is_lost_and_reads_on(
    db: PostgresDatabase,
) -> None:
    # Given a tail that handed out an event and waits for the next one
    streamer = PostgresEventStreamer(db)
    topic = new_name("tail-gap")
    tail = await streamer.tail(topic)
    sender = await streamer.new_sender(topic)
    try:
        await sender.send("before", 1, {"topic": topic})
        batch = await asyncio.wait_for(anext(tail), 5.0)
        assert ([e.foreign_id for e in batch.events], batch.gap) == (["before"], False)
        pending = await _waiting_tail(tail)
        connections = db.listener_connections

        # When the LISTEN connection is terminated (and nothing is sent)
        async with db.connection("test") as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", db.listener_pid)

        # Then the waiting read returns a gap at once, with no events
        batch = await asyncio.wait_for(pending, 5.0)
        assert (list(batch.events), batch.gap) == ([], True)

        # And once the listener is back, the next batch reports that gap too (it came up
        # after the tail's last look), without waiting for an event
        assert await db.wait_listening(10.0)
        assert db.listener_connections > connections
        batch = await asyncio.wait_for(anext(tail), 5.0)
        assert (list(batch.events), batch.gap) == ([], True)

        # And later events come out as before, without a gap, woken by the send
        pending = await _waiting_tail(tail)
        await sender.send("after", 1, {"topic": topic})
        batch = await asyncio.wait_for(pending, 5.0)
        assert ([e.foreign_id for e in batch.events], batch.gap) == (["after"], False)
    finally:
        await tail.close()
        await streamer.close()


async def test_a_tail_is_woken_by_another_process_sends_through_notify(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given a tail in another process (it would look again on its own only after 60 s)
    topic = new_name("tail-wake")
    sending = PostgresEventStreamer(db)
    tailing = PostgresEventStreamer(other_db)
    tail = await tailing.tail(topic)
    sender = await sending.new_sender(topic)
    notified = other_db.notifications
    try:
        for i in range(10):
            # ... waiting, having looked
            pending = await _waiting_tail(tail)
            # When this process sends
            await sender.send(str(i), 1, {"topic": topic})
            # Then the tail there gets it at once: the NOTIFY woke it
            batch = await asyncio.wait_for(pending, 5.0)
            assert ([e.foreign_id for e in batch.events], batch.gap) == ([str(i)], False)
    finally:
        await tail.close()
        await tailing.close()
        await sending.close()
    assert other_db.notifications >= notified + 10


async def test_a_hundred_tails_open_no_connection_and_take_their_own_sends_from_the_cache(
    db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a streamer that has sent (its pool holds what sending and reading need)
    streamer = PostgresEventStreamer(db)
    topic = new_name("tails")
    sender = await streamer.new_sender(topic)
    await sender.send("warm-up", 1, {"topic": topic})
    backends, pool_size, listener = await _backends(db), db._pool.size, db.listener_pid

    # When a hundred tails of the topic open, wait, and get one event sent here
    tails = [await streamer.tail(topic) for _ in range(100)]
    pending = [await _waiting_tail(tail) for tail in tails]
    looks = _Looks(db, topic, monkeypatch)
    await sender.send("one", 1, {"topic": topic})
    batches = await asyncio.wait_for(asyncio.gather(*pending), 5.0)

    # Then each has it, taken from this process's sends without a query, and no
    # connection was opened: the tails share the pool and the one LISTEN connection
    assert all([e.foreign_id for e in batch.events] == ["one"] for batch in batches)
    assert looks.count == 0
    assert await _backends(db) - backends == set()
    assert db._pool.size == pool_size
    assert db.listener_pid == listener
    # ... and closed, they no longer keep the topic's sends in the cache
    for tail in tails:
        await tail.close()
    assert streamer._cache(topic).readers == 0
    await streamer.close()


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


async def test_by_default_a_topic_nobody_reads_is_pruned_after_event_retention(
    pg_url: str,
) -> None:
    # Given the default unread retention (None: the event retention) and a topic without
    # cursors, such as a workflow's run-state-change topic when no hook consumes it
    assert PostgresOptions().unread_event_retention is None
    assert PostgresOptions(event_retention=42.0).unread_retention == 42.0
    async with open_database(pg_url, "prune_default_tests", fresh=True, event_retention=0.0) as db:
        streamer = PostgresEventStreamer(db)
        unread, read = new_name("my_workflow-run-state-change"), new_name("read")
        await (await streamer.new_sender(unread)).send_many(
            [_event(str(i), unread) for i in range(5)]
        )
        await (await streamer.new_sender(read)).send_many([_event(str(i), read) for i in range(3)])
        receiver = await streamer.new_receiver(read, "reader")
        await receiver.ack((await _collect(receiver, 1))[0])  # its cursor: at the first
        await receiver.close()

        deleted = await Pruner(db).prune()

        assert deleted is not None
        assert deleted["unread_events"] == 5
        assert deleted["events"] == 1  # the one the cursor passed; the others wait for it
        rows = await db.fetch("test", f"SELECT topic, id FROM {db.tables.events} ORDER BY id")
        assert [(r["topic"], r["id"]) for r in rows] == [(read, 2), (read, 3)]
        await streamer.close()
