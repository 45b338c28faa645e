"""The MySQL/MariaDB event log: the conformance suites, gap-free reads under a writer that
holds its transaction for 10 s, in-process and polled wake-ups, at most once per write,
pruning.

"Another process" is another ``Database`` on the same tables (its own pool and its own
``TopicHub``, hence its own poll). Where a test steps the poll, it replaces the hub's
wake-up with ``_GatedNudge``: each poll then waits for the test's permit, so no test
sleeps to let a poll happen.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from _mysql_support import admin_sql, mysql_url, open_mysql

from conveyor import Builder, Run, RunState
from conveyor._kit._signal import Signal
from conveyor.abc import Event, EventStreamer, OutgoingEvent, TailBatch
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler
from conveyor.adapters.mysql import (
    MySQLDatabase,
    MySQLEventReceiver,
    MySQLEventStreamer,
    MySQLOptions,
    MySQLTail,
    Pruner,
)
from conveyor.adapters.mysql._topics import TopicHub, TopicLog, hub_of
from conveyor.adaptertest import (
    EventStreamerSuite,
    ReportsPendingSuite,
    TailsTopicsSuite,
    new_name,
)
from conveyor.testing import run_until_idle

__all__ = ["mysql_url"]

pytestmark = pytest.mark.mysql

PREFIX = "events_"


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[MySQLDatabase]:
    async with open_mysql(mysql_url, PREFIX) as database:
        yield database


@pytest.fixture
async def other_db(mysql_url: str) -> AsyncIterator[MySQLDatabase]:
    """A second process's connections to the same tables (its own pool and poll)."""
    async with open_mysql(mysql_url, PREFIX) as database:
        yield database


class OnMySQL:
    @pytest.fixture
    async def streamer(self, db: MySQLDatabase) -> AsyncIterator[EventStreamer]:
        streamer = MySQLEventStreamer(db)
        yield streamer
        await streamer.close()


class TestMySQLEventStreamer(OnMySQL, EventStreamerSuite):
    pass


class TestMySQLReceiversReportPending(OnMySQL, ReportsPendingSuite):
    pass


class TestMySQLTails(OnMySQL, TailsTopicsSuite):
    pass


# ---------------------------------------------------------------- helpers


def _event(fid: str, topic: str, **headers: str) -> OutgoingEvent:
    return OutgoingEvent(fid, 1, {"topic": topic, **headers})


async def _collect(receiver: MySQLEventReceiver, count: int, timeout: float = 10.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            events.extend(await receiver.recv(count - len(events)))
    return events


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once ``condition()`` holds: polled, for in-process state that has no
    awaitable form."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.001)


async def _waiting(receiver: MySQLEventReceiver) -> asyncio.Task[Sequence[Event]]:
    """Start ``receiver.recv(10)`` and return once it waits for its topic's signal."""
    task = asyncio.create_task(receiver.recv(10))
    await _until(lambda: task.done() or receiver._waiting)
    return task


class _GatedNudge:
    """Stands in for a hub's poll wake-up: every wait of the poll loop records the delay
    it would sleep and returns only when the test grants a permit."""

    def __init__(self) -> None:
        self.delays: list[float | None] = []
        self.generation = 0
        self._permits: asyncio.Queue[None] = asyncio.Queue()
        self._polled = asyncio.Event()

    def fire(self) -> None:
        self.generation += 1

    async def wait(self, timeout: float | None = None, since: int | None = None) -> None:
        self.delays.append(timeout)
        self._polled.set()  # the previous poll (if any) has finished
        await self._permits.get()

    async def step(self) -> None:
        """Let one poll run, and return once it has (the loop waits again)."""
        await _until(lambda: bool(self.delays))
        self._polled.clear()
        self._permits.put_nowait(None)
        async with asyncio.timeout(5.0):
            await self._polled.wait()


def _gate(db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch) -> tuple[TopicHub, _GatedNudge]:
    hub = hub_of(db)
    nudge = _GatedNudge()
    monkeypatch.setattr(hub, "_nudge", nudge)
    return hub, nudge


class _Fetches:
    """Counts a database's read statements, by what they do."""

    def __init__(self, db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        fetch = db.fetch

        async def counting(what: str, sql: str, args: Sequence[object] = ()) -> Any:
            self.calls.append(what)
            return await fetch(what, sql, args)

        monkeypatch.setattr(db, "fetch", counting)

    def clear(self) -> None:
        self.calls.clear()


async def _sessions_running(url: str, statement: str) -> int:
    """Sessions of the server in the middle of a statement like ``%statement%``.

    (``information_schema.processlist``, the same on MariaDB and MySQL 8; MariaDB's
    ``innodb_trx`` lists only one of several transactions waiting for one row.)
    """
    rows = await admin_sql(
        url,
        "SELECT COUNT(*) FROM information_schema.processlist "
        "WHERE command = 'Query' AND info LIKE %s",
        (f"%{statement}%",),
    )
    return int(rows[0][0])


async def _wait_for_sessions(url: str, statement: str, count: int) -> None:
    """Polled with a deadline: the server shows what its sessions do only in its tables."""
    async with asyncio.timeout(10.0):
        while True:
            if await _sessions_running(url, statement) >= count:
                return
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- gap-free reads


async def test_a_writer_holding_its_transaction_10_s_is_never_skipped(
    mysql_url: str, db: MySQLDatabase, other_db: MySQLDatabase
) -> None:
    # Given a topic with one event, read by a receiver here and one in another process
    topic = new_name("held")
    sending = MySQLEventStreamer(db)
    reading = MySQLEventStreamer(other_db)
    sender = await sending.new_sender(topic)
    await sender.send("before", 1, {"topic": topic})
    local = await sending.new_receiver(topic, new_name("local"))
    remote = await reading.new_receiver(topic, new_name("remote"))
    assert [e.foreign_id for e in await _collect(local, 1)] == ["before"]
    assert [e.foreign_id for e in await _collect(remote, 1)] == ["before"]

    # ... and a writer (a connection of its own) that takes the next ID the way every
    # sender does, inserts its event and keeps its transaction open for 10 s
    holder = await db.connect()
    taken = asyncio.Event()
    held_at: list[float] = []
    commit_sent_at: list[float] = []

    async def hold() -> None:
        async with holder.cursor() as cur:
            await cur.execute("BEGIN")
            await sending.send_in(cur, topic, [_event("held", topic)])
            taken.set()
            held_at.append(time.monotonic())
            await asyncio.sleep(10.0)  # the scenario: a writer slow to commit
            commit_sent_at.append(time.monotonic())
            await cur.execute("COMMIT")

    holding = asyncio.create_task(hold())
    try:
        await asyncio.wait_for(taken.wait(), 5.0)

        # When later sends to the topic start, from both processes, and a send to
        # another topic too
        later_at: dict[str, float] = {}

        async def later(streamer: MySQLEventStreamer, fid: str) -> None:
            await (await streamer.new_sender(topic)).send(fid, 1, {"topic": topic})
            later_at[fid] = time.monotonic()

        laters = [
            asyncio.create_task(later(sending if i % 2 else reading, f"late-{i}")) for i in range(4)
        ]
        other_topic = new_name("elsewhere")
        await (await sending.new_sender(other_topic)).send("free", 1, {"topic": other_topic})

        # Then the send to another topic committed at once, the later ones wait for the
        # topic's row (the held writer's lock: all four are in the UPDATE that takes
        # their IDs), and none of their events is visible
        assert not holding.done()
        taking = f"UPDATE {db.tables.topics} SET last_id%{topic}"
        await _wait_for_sessions(mysql_url, taking, 4)
        assert not any(task.done() for task in laters)
        rows = await db.fetch(
            "test", f"SELECT foreign_id FROM {db.tables.events} WHERE topic = %s", (topic,)
        )
        assert [r[0] for r in rows] == ["before"]

        # ... and a reader started meanwhile, in the other process, sees only the first
        # event so far
        meanwhile = await reading.new_receiver(topic, new_name("meanwhile"))
        assert [e.foreign_id for e in await _collect(meanwhile, 1)] == ["before"]
        assert not holding.done()
        local_next = await _waiting(local)
        remote_next = await _waiting(remote)

        # When the held writer commits
        await asyncio.wait_for(holding, 20.0)
        await asyncio.wait_for(asyncio.gather(*laters), 10.0)

        # Then it held for 10 s, no later send returned before its COMMIT, and every
        # reader hands out the held event first, then the later ones, in ID order, none
        # skipped
        assert commit_sent_at[0] - held_at[0] >= 9.99  # (timers may fire a hair early)
        assert sorted(later_at) == [f"late-{i}" for i in range(4)]
        assert all(at > commit_sent_at[0] for at in later_at.values())
        received = {
            "local": [*await asyncio.wait_for(local_next, 10.0)],
            "remote": [*await asyncio.wait_for(remote_next, 10.0)],
            "meanwhile": [],
        }
        received["local"] += await _collect(local, 5 - len(received["local"]))
        received["remote"] += await _collect(remote, 5 - len(received["remote"]))
        received["meanwhile"] = await _collect(meanwhile, 5)
        for name, events in received.items():
            assert [e.id for e in events] == [2, 3, 4, 5, 6], name
            assert events[0].foreign_id == "held", name
            assert {e.foreign_id for e in events[1:]} == {f"late-{i}" for i in range(4)}, name
    finally:
        holding.cancel()
        holder.close()
        await sending.close()
        await reading.close()


async def test_concurrent_senders_committing_in_any_order_lose_nothing(
    db: MySQLDatabase, other_db: MySQLDatabase
) -> None:
    # Given eight writers whose transactions stay open for random times
    topic = new_name("race")
    writing = MySQLEventStreamer(db)
    reading = MySQLEventStreamer(other_db)
    receiver = await reading.new_receiver(topic, new_name("reader"))
    rng = random.Random(7)
    per_writer = 25

    async def writer(w: int) -> None:
        conn = await db.connect()
        try:
            async with conn.cursor() as cur:
                for i in range(per_writer):
                    await cur.execute("BEGIN")
                    appended = await writing.send_in(cur, topic, [_event(f"{w}-{i}", topic)])
                    # Random jitter to vary the commit order; it proves nothing by itself.
                    await asyncio.sleep(rng.random() * 0.004)
                    await cur.execute("COMMIT")
                    writing.appended(appended)
        finally:
            conn.close()

    # When a reader in another process consumes (and acknowledges) while they write
    received: list[Event] = []

    async def read() -> None:
        while len(received) < 8 * per_writer:
            for event in await receiver.recv(16):
                received.append(event)
                await receiver.ack(event)

    reader = asyncio.create_task(read())
    await asyncio.gather(*(writer(w) for w in range(8)))
    await asyncio.wait_for(reader, 20.0)
    await receiver.close()
    await reading.close()
    await writing.close()

    # Then every event arrived exactly once, in ID order, with no gap
    assert [e.id for e in received] == list(range(1, 8 * per_writer + 1))
    assert len({e.foreign_id for e in received}) == 8 * per_writer


async def test_a_second_copy_of_an_engine_event_is_dropped_and_its_id_stepped_over(
    db: MySQLDatabase, other_db: MySQLDatabase
) -> None:
    # Given an engine event (run ID and record version) sent, then sent again in a batch
    topic = new_name("once")
    streamer = MySQLEventStreamer(db)
    elsewhere = MySQLEventStreamer(other_db)
    local = await streamer.new_receiver(topic, new_name("local"))
    remote = await elsewhere.new_receiver(topic, new_name("remote"))
    sender = await streamer.new_sender(topic)
    write = {"run_id": "run-1", "record_version": "3"}
    try:
        await sender.send("first", 1, {"topic": topic, **write})
        await sender.send_many(
            [
                _event("copy", topic, **write),
                _event("other", topic, run_id="run-1", record_version="4"),
            ]
        )
        await sender.send("plain", 1, {"topic": topic})

        # Then each reader gets the first copy only, the ID of the dropped one stays
        # unused, and nothing is pending after the last event
        for receiver in (local, remote):
            events = await _collect(receiver, 3)
            assert [(e.id, e.foreign_id) for e in events] == [
                (1, "first"),
                (3, "other"),
                (4, "plain"),
            ]
            assert receiver.pending() == 0
    finally:
        await streamer.close()
        await elsewhere.close()


# ---------------------------------------------------------------- wake-ups and polling


async def test_readers_in_the_sending_process_wake_at_once_and_read_nothing(
    db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given receivers and a tail of a topic, waiting, and a poll that never runs
    _hub, nudge = _gate(db, monkeypatch)
    topic = new_name("local")
    streamer = MySQLEventStreamer(db)
    receivers = [await streamer.new_receiver(topic, new_name("r")) for _ in range(5)]
    tail = await streamer.tail(topic)
    pending = [await _waiting(receiver) for receiver in receivers]
    tail_read = asyncio.ensure_future(anext(tail))
    fetches = _Fetches(db, monkeypatch)

    # When this process sends
    await (await streamer.new_sender(topic)).send("one", 1, {"topic": topic})

    # Then every reader has it at once, without a query and without a poll
    for events in await asyncio.wait_for(asyncio.gather(*pending), 5.0):
        assert [e.foreign_id for e in events] == ["one"]
    assert [e.foreign_id for e in (await asyncio.wait_for(tail_read, 5.0)).events] == ["one"]
    assert fetches.calls == []
    assert nudge.delays == [db.options.poll_min]  # the poll started and waits
    await tail.close()
    await streamer.close()


async def test_one_poll_per_process_serves_every_topic_and_wakes_other_processes_readers(
    db: MySQLDatabase, other_db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another process with three receivers on each of five topics, all waiting
    _hub, nudge = _gate(other_db, monkeypatch)
    topics = [new_name("polled") for _ in range(5)]
    receiving = MySQLEventStreamer(other_db)
    receivers = {
        topic: [await receiving.new_receiver(topic, new_name("r")) for _ in range(3)]
        for topic in topics
    }
    pending = {t: [await _waiting(r) for r in rs] for t, rs in receivers.items()}
    fetches = _Fetches(other_db, monkeypatch)

    # When it polls twice while nothing happens
    await nudge.step()
    await nudge.step()

    # Then each poll was one statement, for all fifteen receivers
    assert fetches.calls == ["polling the event log"] * 2
    assert not any(task.done() for tasks in pending.values() for task in tasks)

    # When this process sends to one of the topics, and the other process polls
    sending = MySQLEventStreamer(db)
    await (await sending.new_sender(topics[2])).send("hello", 1, {"topic": topics[2]})
    fetches.clear()
    await nudge.step()

    # Then its three receivers have the event, from the poll's one statement
    for task in pending[topics[2]]:
        events = await asyncio.wait_for(task, 5.0)
        assert [e.foreign_id for e in events] == ["hello"]
    assert fetches.calls == ["polling the event log"]
    assert not any(task.done() for t in topics if t != topics[2] for task in pending[t])
    await receiving.close()
    await sending.close()


async def test_the_poll_backs_off_while_idle_and_hurries_after_finding_events(
    mysql_url: str, db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_mysql(
        mysql_url, PREFIX, poll_min=0.01, poll_max=0.08, poll_busy=0
    ) as elsewhere:
        # Given a receiver in another process (poll_min 10 ms, poll_max 80 ms, and no
        # busy window: the backoff starts right after each poll)
        _hub, nudge = _gate(elsewhere, monkeypatch)
        topic = new_name("backoff")
        receiving = MySQLEventStreamer(elsewhere)
        receiver = await receiving.new_receiver(topic, new_name("r"))

        # When five polls find nothing
        for _ in range(5):
            await nudge.step()

        # Then the delay doubled from poll_min up to poll_max
        assert nudge.delays == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]

        # When this process sends and the next poll finds it
        sending = MySQLEventStreamer(db)
        await (await sending.new_sender(topic)).send("x", 1, {"topic": topic})
        await nudge.step()

        # Then the receiver has a pending event and the next poll comes after poll_min
        assert receiver.pending() == 1
        assert nudge.delays[-1] == 0.01
        await nudge.step()
        assert nudge.delays[-1] == 0.02
        assert [e.foreign_id for e in await _collect(receiver, 1)] == ["x"]

        # And a receiver with a shorter poll_interval caps the delay
        fast = await receiving.new_receiver(topic, new_name("fast"), poll_interval=0.03)
        for _ in range(3):
            await nudge.step()
        assert nudge.delays[-2:] == [0.03, 0.03]
        await fast.close()
        await receiving.close()
        await sending.close()


async def test_the_poll_stays_at_poll_min_while_the_log_is_busy(
    mysql_url: str, db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_mysql(
        mysql_url, PREFIX, poll_min=0.01, poll_max=0.08, poll_busy=3600
    ) as elsewhere:
        # Given a receiver in another process, whose poll has backed off while idle
        _hub, nudge = _gate(elsewhere, monkeypatch)
        topic = new_name("busy")
        receiving = MySQLEventStreamer(elsewhere)
        receiver = await receiving.new_receiver(topic, new_name("r"))
        for _ in range(3):
            await nudge.step()
        assert nudge.delays == [0.01, 0.02, 0.04, 0.08]

        # When a poll finds another process's event
        sending = MySQLEventStreamer(db)
        await (await sending.new_sender(topic)).send("x", 1, {"topic": topic})
        await nudge.step()
        assert [e.foreign_id for e in await _collect(receiver, 1)] == ["x"]

        # Then the polls that follow, finding nothing, stay at poll_min (busy window)
        for _ in range(3):
            await nudge.step()
        assert nudge.delays[-4:] == [0.01] * 4
        await receiving.close()
        await sending.close()


async def test_a_send_makes_its_process_poll_at_poll_min(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_mysql(
        mysql_url, PREFIX, poll_min=0.01, poll_max=0.08, poll_busy=3600
    ) as process:
        # Given a process whose poll has backed off while idle
        _hub, nudge = _gate(process, monkeypatch)
        streamer = MySQLEventStreamer(process)
        receiver = await streamer.new_receiver(new_name("answers"), new_name("r"))
        for _ in range(3):
            await nudge.step()
        assert nudge.delays[-1] == 0.08

        # When it sends (to any topic: another process is likely to answer)
        await (await streamer.new_sender(new_name("requests"))).send("q", 1, {})

        # Then its polls come every poll_min
        for _ in range(2):
            await nudge.step()
        assert nudge.delays[-2:] == [0.01, 0.01]
        await receiver.close()
        await streamer.close()


async def test_the_poll_stops_when_the_last_reader_closes(
    db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, nudge = _gate(db, monkeypatch)
    streamer = MySQLEventStreamer(db)
    receiver = await streamer.new_receiver(new_name("t"), new_name("r"))
    tail = await streamer.tail(new_name("t"))
    await nudge.step()
    assert hub._task is not None

    await receiver.close()
    await tail.close()
    assert not hub.reading
    await streamer.close()

    assert hub._task is None


async def test_a_tail_dropped_without_close_leaves_the_poll(
    db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tail that is read once and then dropped without close()
    hub, _nudge = _gate(db, monkeypatch)
    topic = new_name("dropped")
    streamer = MySQLEventStreamer(db)
    tail = await streamer.tail(topic)
    await (await streamer.new_sender(topic)).send("x", 1, {"topic": topic})
    assert [e.foreign_id for e in (await anext(tail)).events] == ["x"]
    assert hub.reading

    # When it is garbage-collected, then nothing is polled for it any more
    del tail
    gc.collect()
    assert not hub.reading
    await streamer.close()
    assert hub._task is None


async def test_streamers_on_one_database_wake_each_others_readers(
    db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two streamers on one database (a store's and the workflow's), no poll running
    _gate(db, monkeypatch)
    topic = new_name("shared")
    reading, writing = MySQLEventStreamer(db), MySQLEventStreamer(db)
    receiver = await reading.new_receiver(topic, new_name("r"))
    pending = await _waiting(receiver)

    # When one sends, then the other's receiver has it at once
    await (await writing.new_sender(topic)).send("x", 1, {"topic": topic})
    assert [e.foreign_id for e in await asyncio.wait_for(pending, 5.0)] == ["x"]
    await reading.close()
    await writing.close()


def _read_or_waiting(read: asyncio.Future[TailBatch], tail: MySQLTail) -> bool:
    return read.done() or tail._waiting


async def test_a_tail_in_another_process_is_woken_by_the_poll(
    db: MySQLDatabase, other_db: MySQLDatabase
) -> None:
    topic = new_name("tail")
    sending, tailing = MySQLEventStreamer(db), MySQLEventStreamer(other_db)
    tail = await tailing.tail(topic)
    sender = await sending.new_sender(topic)
    try:
        for i in range(5):
            read = asyncio.ensure_future(anext(tail))
            await _until(partial(_read_or_waiting, read, tail))
            await sender.send(str(i), 1, {"topic": topic})
            batch = await asyncio.wait_for(read, 5.0)
            assert ([e.foreign_id for e in batch.events], batch.gap) == ([str(i)], False)
    finally:
        await tail.close()
        await tailing.close()
        await sending.close()


# ---------------------------------------------------------------- a workflow on the streamer


class _Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    CHECKED = 2
    DONE = 3


async def _check(run: Run[dict[str, str], _Status]) -> _Status:
    run.object["checked"] = "yes"
    return _Status.CHECKED


async def _finish(run: Run[dict[str, str], _Status]) -> _Status:
    return _Status.DONE


async def test_run_until_idle_sees_the_streamers_receivers_caught_up(db: MySQLDatabase) -> None:
    # Given a workflow of two steps (sharded) on the streamer, the rest in memory
    streamer = MySQLEventStreamer(db)
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


# ---------------------------------------------------------------- cursors and pruning


async def test_cursors_are_shared_between_processes(
    db: MySQLDatabase, other_db: MySQLDatabase
) -> None:
    topic, name = new_name("cursor"), new_name("reader")
    here, there = MySQLEventStreamer(db), MySQLEventStreamer(other_db)
    await (await here.new_sender(topic)).send_many([_event(str(i), topic) for i in range(4)])
    receiver = await here.new_receiver(topic, name)
    for event in await _collect(receiver, 2):
        await receiver.ack(event)
    await receiver.close()

    resumed = await there.new_receiver(topic, name, stream_from_latest=True)

    assert [e.foreign_id for e in await _collect(resumed, 2)] == ["2", "3"]
    await here.close()
    await there.close()


async def test_receivers_that_never_ack_leave_no_rows(db: MySQLDatabase) -> None:
    streamer = MySQLEventStreamer(db)
    topic = new_name("await")
    sender = await streamer.new_sender(topic)
    await sender.send("x", 1, {"topic": topic})
    receiver = await streamer.new_receiver(topic, new_name("await-run"), stream_from_latest=True)
    await sender.send("y", 1, {"topic": topic})
    assert [e.foreign_id for e in await receiver.recv(5)] == ["y"]
    await receiver.close()
    await streamer.close()

    rows = await db.fetch(
        "test", f"SELECT COUNT(*) FROM {db.tables.cursors} WHERE topic = %s", (topic,)
    )
    assert rows[0][0] == 0


async def test_pruning_deletes_consumed_events_and_dead_cursors(mysql_url: str) -> None:
    async with open_mysql(
        mysql_url,
        "prune_consumed_",
        event_retention=0.0,
        cursor_retention=3600.0,
        unread_event_retention=3600.0,
    ) as db:
        # Given a topic read by two names, one of them past all ten events, the other
        # past four, and a topic nobody reads
        streamer = MySQLEventStreamer(db)
        t = db.tables
        consumed, unread = new_name("consumed"), new_name("unread")
        await (await streamer.new_sender(consumed)).send_many(
            [_event(str(i), consumed) for i in range(10)]
        )
        await (await streamer.new_sender(unread)).send_many(
            [_event(str(i), unread) for i in range(3)]
        )
        fast = await streamer.new_receiver(consumed, "fast")
        for event in await _collect(fast, 10):
            await fast.ack(event)
        slow = await streamer.new_receiver(consumed, "slow")
        for event in await _collect(slow, 4):
            await slow.ack(event)
        await fast.close()
        await slow.close()
        # ... and a cursor nobody wrote for two hours (dead)
        await db.execute(
            "test",
            f"INSERT INTO {t.cursors} (topic, name, position, updated_at) "
            "VALUES (%s, 'gone', 0, UTC_TIMESTAMP(6) - INTERVAL 2 HOUR)",
            (consumed,),
        )
        extra_calls: list[MySQLDatabase] = []

        async def other_tables(on: MySQLDatabase) -> int:
            extra_calls.append(on)
            return 7

        # When the pruner runs (with another table's pruning as its extra step)
        deleted = await Pruner(db, extra={"other": other_tables}).prune()

        # Then the dead cursor and the events every cursor passed are gone, unread
        # events are kept for their hour, and the extra step ran in the same pass
        assert deleted == {"cursors": 1, "events": 4, "unread_events": 0, "other": 7}
        assert extra_calls == [db]
        rows = await db.fetch("test", f"SELECT topic, id FROM {t.events} ORDER BY topic, id")
        assert [r[1] for r in rows if r[0] == consumed] == list(range(5, 11))
        assert len([r for r in rows if r[0] == unread]) == 3
        # ... and the slow reader resumes where it was
        slow = await streamer.new_receiver(consumed, "slow")
        assert [e.id for e in await _collect(slow, 6)] == list(range(5, 11))
        await slow.close()
        # ... and IDs are not given out again after the pruning
        await (await streamer.new_sender(consumed)).send("11", 1, {"topic": consumed})
        fresh = await streamer.new_receiver(consumed, "fresh", stream_from_latest=False)
        assert [e.id for e in await _collect(fresh, 7)] == list(range(5, 12))
        await streamer.close()


async def test_by_default_a_topic_nobody_reads_is_pruned_after_event_retention(
    mysql_url: str,
) -> None:
    assert MySQLOptions().unread_event_retention is None
    assert MySQLOptions(event_retention=42.0).unread_retention == 42.0
    async with open_mysql(mysql_url, "prune_unread_", event_retention=0.0) as db:
        streamer = MySQLEventStreamer(db)
        unread, read = new_name("wf-run-state-change"), new_name("read")
        await (await streamer.new_sender(unread)).send_many(
            [_event(str(i), unread) for i in range(5)]
        )
        await (await streamer.new_sender(read)).send_many([_event(str(i), read) for i in range(3)])
        receiver = await streamer.new_receiver(read, "reader")
        await receiver.ack((await _collect(receiver, 1))[0])  # its cursor: at the first
        await receiver.close()

        deleted = await Pruner(db).prune()

        assert deleted == {"cursors": 0, "events": 1, "unread_events": 5}
        rows = await db.fetch("test", f"SELECT topic, id FROM {db.tables.events} ORDER BY id")
        assert [(r[0], r[1]) for r in rows] == [(read, 2), (read, 3)]
        await streamer.close()


async def test_one_process_prunes_at_a_time(mysql_url: str) -> None:
    async with open_mysql(mysql_url, "prune_locked_") as db:
        pruner = Pruner(db)
        holder = await db.connect()
        try:
            async with holder.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, 0)", (pruner._lock,))
                assert (await cur.fetchone())[0] == 1
                assert await pruner.prune() is None  # another process is pruning
                await cur.execute("SELECT RELEASE_LOCK(%s)", (pruner._lock,))
                await cur.fetchall()
            assert await pruner.prune() == {"cursors": 0, "events": 0, "unread_events": 0}
        finally:
            holder.close()


# ---------------------------------------------------------------- what a process keeps


def _events(*ids: int) -> list[Event]:
    return [Event(i, str(i), 1, {}, datetime.now(UTC)) for i in ids]


def _kept(topic_log: TopicLog) -> tuple[int, int, list[int]]:
    return topic_log.start, topic_log.end, [e.id for e in topic_log.events]


def test_a_topic_log_keeps_ranges_it_knows_completely_and_steps_over_gaps() -> None:
    topic_log = TopicLog("t", Signal())
    topic_log.readers = 1

    # Adjacent and overlapping ranges join; a dropped duplicate leaves a hole in the IDs
    topic_log.cover(3, 6, _events(4, 6))
    topic_log.cover(6, 8, _events(7, 8))
    topic_log.cover(5, 9, _events(6, 7, 8, 9))
    assert _kept(topic_log) == (3, 9, [4, 6, 7, 8, 9])
    assert topic_log.after(3, 10) == (_kept_events(topic_log, 4, 6, 7, 8, 9), 9)
    assert topic_log.after(4, 1) == (_kept_events(topic_log, 6), 6)
    assert topic_log.after(2, 10) == ([], None)  # before the range: read the table
    assert topic_log.last == 9

    # An older range apart from it (a lagging reader's read) does not replace it
    topic_log.cover(0, 2, _events(1, 2))
    assert _kept(topic_log) == (3, 9, [4, 6, 7, 8, 9])

    # A newer one apart from it does
    topic_log.cover(12, 13, _events(13))
    assert _kept(topic_log) == (12, 13, [13])

    # A range without events (only duplicates) leaves nothing pending past it
    topic_log.cover(13, 15, [])
    assert topic_log.after(13, 5) == ([], 15)
    assert not topic_log.has_after(13)
    topic_log.advance(16)  # another process committed 16: pending
    assert topic_log.has_after(13)
    assert topic_log.has_after(15)
    assert not topic_log.has_after(16)


def _kept_events(topic_log: TopicLog, *ids: int) -> list[Event]:
    return [e for e in topic_log.events if e.id in ids]


def test_a_topic_log_keeps_a_bounded_window_and_nothing_without_readers() -> None:
    topic_log = TopicLog("t", Signal())
    topic_log.readers = 1
    ids = range(1, 3 * TopicLog.LIMIT + 1)
    for i in ids:
        topic_log.cover(i - 1, i, _events(i))
    assert len(topic_log.events) <= 2 * TopicLog.LIMIT
    start, end, kept = _kept(topic_log)
    assert (end, kept[-1], kept[0]) == (ids[-1], ids[-1], start + 1)

    topic_log.readers = 0
    topic_log.cover(end, end + 1, _events(end + 1))
    assert _kept(topic_log) == (0, 0, [])
    assert topic_log.last == end + 1
