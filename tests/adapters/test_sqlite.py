"""The SQLite adapters pass the conformance suites, on a fresh file per case."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import AdapterError, AdapterUnavailable, Builder, RecordNotFound, Run
from conveyor.abc import Event, KeepsHistory, OutgoingEvent, RecordsFailures, RoleScheduler
from conveyor.adapters.sqlite import (
    SCHEMA_VERSION,
    SQLiteEventReceiver,
    SQLiteEventStreamer,
    SQLiteRecordStore,
    SQLiteRecordStoreWithoutHistory,
    SQLiteRoleScheduler,
    SQLiteTimeoutStore,
    migrate,
)
from conveyor.adapters.sqlite import _failures as _failures_sql
from conveyor.adapters.sqlite import _streamer as sqlite_streamer
from conveyor.adapters.sqlite._schema import path_from_url, statements
from conveyor.adaptertest import (
    EventStreamerSuite,
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    ListsRunsSuite,
    PinsEventLocationSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
    ReportsPendingSuite,
    RoleSchedulerSuite,
    SchedulerFactory,
    TailsTopicsSuite,
    TimeoutStoreSuite,
    dummy_record,
    failure,
    insert,
    update,
)
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle

WAIT = 10.0


class TestSQLiteRecordStore(RecordStoreSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStoreRecordsFailures(RecordsFailuresSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStoreWithoutHistoryRecordsFailures(RecordsFailuresSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStoreWithoutHistory]:
        store = await SQLiteRecordStoreWithoutHistory.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStoreKeepsHistory(KeepsHistorySuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStoreKeepsHistoryOnItsThread(KeepsHistorySuite):
    """Every statement through the connection's thread (``inline=False``)."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"), inline=False)
        yield store
        await store.close()


class TestSQLiteRecordStoreKeepsDefinitions(KeepsDefinitionsSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStorePinsEventLocation(PinsEventLocationSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteRecordStoreListsRuns(ListsRunsSuite):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"))
        yield store
        await store.close()


class TestSQLiteEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, tmp_path: Path) -> AsyncIterator[SQLiteEventStreamer]:
        streamer = await SQLiteEventStreamer.open(str(tmp_path / "events.db"))
        yield streamer
        await streamer.close()


class TestSQLiteRecordStoreOnItsThread(RecordStoreSuite):
    """Every statement through the connection's thread (``inline=False``)."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SQLiteRecordStore]:
        store = await SQLiteRecordStore.open(str(tmp_path / "records.db"), inline=False)
        yield store
        await store.close()


class TestSQLiteEventStreamerOnItsThread(EventStreamerSuite):
    """Every statement through the connection's thread (``inline=False``)."""

    @pytest.fixture
    async def streamer(self, tmp_path: Path) -> AsyncIterator[SQLiteEventStreamer]:
        streamer = await SQLiteEventStreamer.open(str(tmp_path / "events.db"), inline=False)
        yield streamer
        await streamer.close()


class TestSQLiteReceiversReportPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self, tmp_path: Path) -> AsyncIterator[SQLiteEventStreamer]:
        streamer = await SQLiteEventStreamer.open(str(tmp_path / "events.db"))
        yield streamer
        await streamer.close()


class TestSQLiteTails(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self, tmp_path: Path) -> AsyncIterator[SQLiteEventStreamer]:
        streamer = await SQLiteEventStreamer.open(str(tmp_path / "events.db"))
        yield streamer
        await streamer.close()


class TestSQLiteTailsOnItsThread(TailsTopicsSuite):
    """Every statement through the connection's thread (``inline=False``)."""

    @pytest.fixture
    async def streamer(self, tmp_path: Path) -> AsyncIterator[SQLiteEventStreamer]:
        streamer = await SQLiteEventStreamer.open(str(tmp_path / "events.db"), inline=False)
        yield streamer
        await streamer.close()


class TestSQLiteRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, tmp_path: Path) -> AsyncIterator[SchedulerFactory]:
        made: list[SQLiteRoleScheduler] = []
        path = str(tmp_path / "roles.db")

        async def make(n: int) -> Sequence[RoleScheduler]:
            for _ in range(n):  # one connection each, as separate processes would have
                made.append(await SQLiteRoleScheduler.open(path, lease_ttl=2.0, poll_interval=0.05))
            return made[-n:]

        yield make
        for scheduler in made:
            await scheduler.close()


class TestSQLiteTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self, tmp_path: Path) -> AsyncIterator[SQLiteTimeoutStore]:
        store = await SQLiteTimeoutStore.open(str(tmp_path / "timeouts.db"))
        yield store
        await store.close()


# ---------------------------------------------------------------------------- helpers


def _count(path: Path, sql: str, *params: object) -> int:
    """One integer from the file, read on a separate plain connection."""
    conn = sqlite3.connect(path)
    try:
        (value,) = conn.execute(sql, params).fetchone()
        return int(value)
    finally:
        conn.close()


async def _drain(receiver: SQLiteEventReceiver, count: int, *, ack: bool = True) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(WAIT):
        while len(events) < count:
            batch = await receiver.recv(count - len(events))
            for event in batch:
                if ack:
                    await receiver.ack(event)
            events.extend(batch)
    return events


def _outgoing(n: int, prefix: str = "e") -> list[OutgoingEvent]:
    return [OutgoingEvent(f"{prefix}-{i}", 1, {"topic": "t", "n": str(i)}) for i in range(n)]


@contextlib.contextmanager
def _write_lock_held(path: Path) -> Iterator[Callable[[], None]]:
    """Another connection (as another process would) holds the write lock until released."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            conn.execute("ROLLBACK")
            conn.close()

    try:
        yield release
    finally:
        release()


class _Ticker:
    """Measures the longest gap between event-loop iterations while it runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> _Ticker:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# ---------------------------------------------------------------------------- schema and URLs


async def test_migrate_creates_the_schema_once_and_open_can_require_it(tmp_path: Path) -> None:
    path = tmp_path / "migrated.db"
    url = f"sqlite:///{path}"  # an absolute path: sqlite:////...

    with pytest.raises(AdapterError, match="conveyor migrate"):
        async with conveyor.connect(url, create_schema=False):
            pass  # pragma: no cover
    assert await migrate(url) == SCHEMA_VERSION
    assert await migrate(str(path)) == SCHEMA_VERSION  # idempotent; a plain path works too

    async with conveyor.connect(url + "?create_schema=false&lease_ttl=2") as backend:
        record = dummy_record()
        await backend.record_store.store(insert(record))
    assert _count(path, "PRAGMA user_version") == SCHEMA_VERSION
    assert _count(path, "SELECT COUNT(*) FROM records") == 1


def _version_1_file(path: Path) -> None:
    """A file as conveyor with schema version 1 made it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements(1):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()


async def test_migrate_upgrades_a_version_1_file_to_failures_and_history(tmp_path: Path) -> None:
    # Given a file at schema version 1 holding a run
    path = tmp_path / "v1.db"
    _version_1_file(path)
    record = dummy_record()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO records (run_id, workflow_name, foreign_id, run_state, status, object, "
        "created_at, updated_at, version) VALUES (?, ?, ?, 1, 1, X'7B7D', 0, 0, 1)",
        (record.run_id, record.workflow_name, record.foreign_id),
    )
    conn.close()

    # Then code that needs the current version refuses it until it is migrated
    with pytest.raises(AdapterError, match="conveyor migrate"):
        async with conveyor.connect(f"sqlite:///{path}", create_schema=False):
            pass  # pragma: no cover
    assert await migrate(f"sqlite:///{path}") == SCHEMA_VERSION == 5
    assert _count(path, "PRAGMA user_version") == 5
    indexes = "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'records_list_%'"
    assert _count(path, indexes) == 6
    assert _count(path, "SELECT COUNT(*) FROM definitions") == 0
    assert _count(path, "SELECT COUNT(*) FROM settings") == 0

    # ... after which the run is there, its failures are kept and its writes leave history
    async with conveyor.connect(f"sqlite:///{path}", create_schema=False) as backend:
        store = backend.record_store
        assert isinstance(store, SQLiteRecordStore)
        stored = await store.lookup(record.run_id)
        assert await store.record_failure(failure(stored))
        await store.store(update(stored, status=2))
        assert [e.version for e in await store.history(record.run_id)] == [2]
        assert [f.version for f in await store.failures(record.run_id)] == [1]


async def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    # Given a file migrated by a conveyor newer than this one
    path = tmp_path / "newer.db"
    await migrate(str(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    # Then neither migrate nor open touches it
    with pytest.raises(AdapterError, match="upgrade conveyor"):
        await migrate(str(path))
    for create_schema in (True, False):
        with pytest.raises(AdapterError, match=f"schema version {SCHEMA_VERSION + 1}"):
            async with conveyor.connect(f"sqlite:///{path}", create_schema=create_schema):
                pass  # pragma: no cover


async def test_retries_due_failures_and_history_are_served_by_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    await migrate(str(path))
    conn = sqlite3.connect(path)
    try:
        for sql, args in (
            (_failures_sql.SELECT_DUE, ("wf", "p", 10)),
            (_failures_sql.SELECT_FAILURES, ("r",)),
            (_failures_sql.SELECT_HISTORY, ("r",)),
        ):
            steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
            # every table is searched by a key, and nothing is sorted after reading
            assert not [s for s in steps if s.startswith("SCAN") or "TEMP B-TREE" in s], steps
        sql = f"EXPLAIN QUERY PLAN {_failures_sql.SELECT_DUE}"
        due = [row[3] for row in conn.execute(sql, ("wf", "p", 10))]
        assert any("failures_due" in step for step in due), due
    finally:
        conn.close()


async def test_the_history_option_picks_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    async with conveyor.connect(url) as on:
        assert isinstance(on.record_store, SQLiteRecordStore)
        assert isinstance(on.record_store, KeepsHistory)
    offs: list[tuple[str, dict[str, Any]]] = [
        (f"{url}?history=false", {}),
        (url, {"history": False}),
    ]
    for off_url, options in offs:
        async with conveyor.connect(off_url, **options) as off:
            store = off.record_store
            assert isinstance(store, SQLiteRecordStoreWithoutHistory)
            assert not isinstance(store, KeepsHistory)
            assert isinstance(store, RecordsFailures)
            record = dummy_record(foreign_id=f"off-{len(options)}")
            await store.store(insert(record))
            assert await store.record_failure(failure(record))
    assert _count(tmp_path / "history.db", "SELECT COUNT(*) FROM history") == 0
    assert _count(tmp_path / "history.db", "SELECT COUNT(*) FROM failures") == 2
    with pytest.raises(AdapterError, match="history='maybe' is not a boolean"):
        async with conveyor.connect(f"{url}?history=maybe"):
            pass  # pragma: no cover


def test_urls_name_relative_and_absolute_files() -> None:
    assert path_from_url("sqlite:///orders.db") == "orders.db"
    assert path_from_url("sqlite:///data/orders.db") == "data/orders.db"
    assert path_from_url("sqlite:////var/lib/orders.db") == "/var/lib/orders.db"
    assert path_from_url("/tmp/plain.db") == "/tmp/plain.db"
    with pytest.raises(AdapterError):
        path_from_url("sqlite:///:memory:")
    with pytest.raises(AdapterError):
        path_from_url("sqlite://otherhost/orders.db")


async def test_unknown_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="unknown sqlite:// option"):
        async with conveyor.connect(f"sqlite:///{tmp_path}/x.db?colour=red"):
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="colour"):
        async with conveyor.connect(f"sqlite:///{tmp_path}/x.db", colour="red"):
            pass  # pragma: no cover


async def test_a_missing_directory_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AdapterUnavailable):
        async with conveyor.connect(f"sqlite:///{tmp_path}/no/such/dir/x.db"):
            pass  # pragma: no cover


# ---------------------------------------------------------------------------- locks


async def test_a_write_waits_for_another_writer_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    # busy_timeout=WAIT: a write that waited for the lock on the event loop's thread would
    # stall the loop for all of it (the loop, which has to let go of the lock, included)
    store = await SQLiteRecordStore.open(str(path), busy_timeout=WAIT)
    try:
        earlier, record = dummy_record(foreign_id="earlier"), dummy_record()
        await store.store(insert(earlier))
        with _write_lock_held(path) as release, _Ticker() as ticker:
            # Given another connection holds the write lock
            # When a write starts (its first step meets the lock)
            writing = asyncio.create_task(store.store(insert(record)))
            await asyncio.sleep(0)
            # Then the loop goes on serving this store (WAL readers never wait for the
            # writer), and the write is still waiting after that read
            assert (await store.lookup(earlier.run_id)).foreign_id == "earlier"
            assert not writing.done(), "the write went through while the lock was held"
            # When the other connection lets go
            release()
            await asyncio.wait_for(writing, WAIT)
        # Then the write succeeded, and the loop never stalled for anything like the
        # busy timeout (half of it is the bound: the expected stall is milliseconds)
        assert (await store.lookup(record.run_id)).run_id == record.run_id
        assert ticker.longest < WAIT / 2, f"the event loop stalled for {ticker.longest:.3f}s"
    finally:
        await store.close()


async def test_a_lock_held_past_lock_timeout_raises_adapter_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "stuck.db"
    store = await SQLiteRecordStore.open(str(path), busy_timeout=0.05, lock_timeout=0.3)
    try:
        with _write_lock_held(path), pytest.raises(AdapterUnavailable, match="locked"):
            await store.store(insert(dummy_record()))
        # The connection is fine afterwards.
        await store.store(insert(dummy_record(foreign_id="after")))
    finally:
        await store.close()


async def test_a_write_cancelled_while_waiting_for_the_lock_never_runs_and_the_store_stays_usable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cancelled.db"
    # Every statement on the store's one thread, in order (inline=False), and a busy
    # timeout longer than the test: the first write waits on that thread until released.
    store = await SQLiteRecordStore.open(str(path), busy_timeout=WAIT, inline=False)
    try:
        first, cancelled = dummy_record(foreign_id="first"), dummy_record(foreign_id="cancelled")
        with _write_lock_held(path) as release:
            # Given another connection holds the write lock, a write waits for it on the
            # store's thread, and a second write is queued behind the first
            waiting = asyncio.create_task(store.store(insert(first)))
            queued = asyncio.create_task(store.store(insert(cancelled)))
            await asyncio.sleep(0)  # both take their first step: their jobs are queued
            # When the second one's caller is cancelled, and then the lock is released
            queued.cancel()
            await asyncio.wait({queued})
            release()
            await asyncio.wait_for(waiting, WAIT)
        # Then the store is usable: a later write goes through; by the time it has, the
        # cancelled write had its turn on the thread (jobs run in order) and did not run
        later = dummy_record(foreign_id="later")
        await store.store(insert(later))
        assert queued.cancelled()
        assert (await store.lookup(later.run_id)).foreign_id == "later"
        assert (await store.lookup(first.run_id)).foreign_id == "first"
        with pytest.raises(RecordNotFound):
            await store.lookup(cancelled.run_id)
    finally:
        await store.close()


# ---------------------------------------------------------------------------- streams


async def test_cursors_and_records_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/restart.db"
    record = dummy_record()
    async with conveyor.connect(url) as backend:
        await backend.record_store.store(insert(record))
        sender = await backend.streamer.new_sender("orders")
        await sender.send_many(_outgoing(5))
        receiver = await backend.streamer.new_receiver("orders", "shipper")
        got = await receiver.recv(5)
        for event in got[:3]:  # the last two are never acknowledged
            await receiver.ack(event)

    async with conveyor.connect(url) as backend:
        receiver = await backend.streamer.new_receiver("orders", "shipper")
        again = await receiver.recv(10)
        assert [e.foreign_id for e in again] == ["e-3", "e-4"]
        assert (await backend.record_store.lookup(record.run_id)).run_id == record.run_id


async def test_consumed_events_are_pruned_and_the_file_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "pruned.db"
    streamer = await SQLiteEventStreamer.open(str(path), retention=0, prune_interval=0)
    try:
        sender = await streamer.new_sender("busy")
        first = await streamer.new_receiver("busy", "first")
        second = await streamer.new_receiver("busy", "second")  # registered: pins the topic
        pages: list[int] = []
        for cycle in range(6):
            await sender.send_many(_outgoing(500, f"c{cycle}"))
            await _drain(first, 500)
            # Not pruned while "second" has not passed them.
            await streamer.prune()
            assert _count(path, "SELECT COUNT(*) FROM events") == 500
            await _drain(second, 500)
            assert await streamer.prune() == 500
            assert _count(path, "SELECT COUNT(*) FROM events") == 0
            pages.append(_count(path, "PRAGMA page_count"))
        assert pages[-1] == pages[1], f"the file kept growing: {pages} pages"
        # A name that will never read again stops holding events back once dropped.
        await sender.send_many(_outgoing(10, "stale"))
        await _drain(first, 10)
        assert await streamer.prune() == 0
        assert await streamer.drop_cursor("busy", "second")
        assert await streamer.prune() == 10
        # A new name starts at the oldest event kept; ids are never reused.
        await sender.send("late", 1, {})
        (late,) = await _drain(await streamer.new_receiver("busy", "newcomer"), 1)
        assert late.foreign_id == "late"
        assert late.id == 3011
    finally:
        await streamer.close()


async def test_receivers_from_latest_that_never_ack_leave_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "ephemeral.db"
    streamer = await SQLiteEventStreamer.open(str(path), retention=0, prune_interval=0)
    try:
        sender = await streamer.new_sender("changes")
        for i in range(20):  # as Workflow.wait does: a fresh name each time, never acked
            waiter = await streamer.new_receiver("changes", f"await-{i}", stream_from_latest=True)
            await sender.send(f"run-{i}", 1, {})
            assert [e.foreign_id for e in await waiter.recv(5)] == [f"run-{i}"]
            await waiter.close()
        assert _count(path, "SELECT COUNT(*) FROM cursors") == 0
        # Nothing registered on the topic: its events go by age alone.
        assert await streamer.prune() == 20
    finally:
        await streamer.close()


async def test_events_sent_through_another_connection_wake_a_receiver(tmp_path: Path) -> None:
    path = str(tmp_path / "two.db")
    here = await SQLiteEventStreamer.open(path)
    there = await SQLiteEventStreamer.open(path)  # another process, as far as SQLite knows
    try:
        # Given a receiver that would look again on its own only after an hour, waiting:
        # its first look (inline, in its first step) found nothing
        receiver = await here.new_receiver("t", "reader", poll_interval=3600)
        pending = asyncio.create_task(receiver.recv(10))
        await asyncio.sleep(0)
        assert not pending.done()
        # When another connection sends
        sender = await there.new_sender("t")
        await sender.send("over there", 1, {})
        # Then the receiver gets it long before its own next look: the connection's
        # watcher noticed the other connection's commit and woke it
        events = await asyncio.wait_for(pending, WAIT)
        assert [e.foreign_id for e in events] == ["over there"]
    finally:
        await there.close()
        await here.close()


async def test_a_tail_leaves_no_rows_and_reports_a_gap_once_events_were_pruned_unread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tailed.db"
    # retention=0: the pruner may delete an unread event at once (nothing is registered
    # on the topic), so no batch can rule out a gap
    streamer = await SQLiteEventStreamer.open(str(path), retention=0, prune_interval=0)
    try:
        # Given a tail, and three events sent and pruned before it read them
        sender = await streamer.new_sender("watched")
        tail = await streamer.tail("watched")
        await sender.send_many(_outgoing(3, "gone"))
        assert await streamer.prune() == 3

        # Then its next batch reports the gap, with nothing to hand out
        batch = await asyncio.wait_for(anext(tail), WAIT)
        assert batch.gap
        assert list(batch.events) == []
        # ... it still hands out later events, and it never wrote a cursor
        await sender.send("kept", 1, {})
        batch = await asyncio.wait_for(anext(tail), WAIT)
        assert [e.foreign_id for e in batch.events] == ["kept"]
        assert _count(path, "SELECT COUNT(*) FROM cursors") == 0
        await tail.close()
    finally:
        await streamer.close()


async def test_a_tail_that_keeps_up_reports_no_gap_while_events_are_pruned(
    tmp_path: Path,
) -> None:
    streamer = await SQLiteEventStreamer.open(str(tmp_path / "kept-up.db"), prune_interval=0)
    try:
        # Given a tail that read every event sent (retention: the default minute)
        sender = await streamer.new_sender("watched")
        tail = await streamer.tail("watched")
        for i in range(3):
            await sender.send(str(i), 1, {})
            batch = await asyncio.wait_for(anext(tail), WAIT)
            assert ([e.foreign_id for e in batch.events], batch.gap) == ([str(i)], False)
        # When the pruner runs (nothing is old enough to go) and another event follows
        assert await streamer.prune() == 0
        await sender.send("3", 1, {})

        # Then the next batch has it and no gap
        batch = await asyncio.wait_for(anext(tail), WAIT)
        assert ([e.foreign_id for e in batch.events], batch.gap) == (["3"], False)
    finally:
        await streamer.close()


async def test_a_tail_is_woken_by_another_connections_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "two-tails.db")
    here = await SQLiteEventStreamer.open(path)
    there = await SQLiteEventStreamer.open(path)  # another process, as far as SQLite knows
    try:
        # Given a tail that would look again on its own only after an hour, waiting
        monkeypatch.setattr(sqlite_streamer, "_FALLBACK_POLL", 3600.0)
        tail = await here.tail("t")
        assert tail._poll == 3600.0
        pending = asyncio.ensure_future(anext(tail))
        await asyncio.sleep(0)
        assert not pending.done()

        # When another connection sends
        await (await there.new_sender("t")).send("over there", 1, {})

        # Then the hub's watcher wakes it long before its own next look
        batch = await asyncio.wait_for(pending, WAIT)
        assert [e.foreign_id for e in batch.events] == ["over there"]
        assert not batch.gap
    finally:
        await there.close()
        await here.close()


async def test_closing_the_streamer_ends_its_tails(tmp_path: Path) -> None:
    streamer = await SQLiteEventStreamer.open(str(tmp_path / "closing.db"))
    tail = await streamer.tail("t")
    pending = asyncio.ensure_future(anext(tail))
    await asyncio.sleep(0)

    await streamer.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, WAIT)
    with pytest.raises(AdapterError):
        await streamer.tail("t")


# ---------------------------------------------------------------------------- one workflow


class SyncStatus(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    EMAIL_SET = 2
    COOLED_DOWN = 3
    COMPLETED = 4


async def _set_email(run: Run[dict[str, str], SyncStatus]) -> SyncStatus:
    run.object["email"] = "a@example.com"
    return SyncStatus.EMAIL_SET


async def _an_hour_later(run: Run[dict[str, str], SyncStatus], now: datetime) -> datetime:
    return now + timedelta(hours=1)


async def _cool_down(run: Run[dict[str, str], SyncStatus], now: datetime) -> SyncStatus:
    return SyncStatus.COOLED_DOWN


async def _finish(run: Run[dict[str, str], SyncStatus]) -> SyncStatus:
    run.object["done"] = "yes"
    return SyncStatus.COMPLETED


async def test_a_workflow_runs_on_sqlite_for_everything(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    b = Builder("sync user", dict, SyncStatus)
    b.add_step(SyncStatus.STARTED, _set_email, SyncStatus.EMAIL_SET)
    b.add_timeout(SyncStatus.EMAIL_SET, _an_hour_later, _cool_down, SyncStatus.COOLED_DOWN)
    b.add_step(SyncStatus.COOLED_DOWN, _finish, SyncStatus.COMPLETED)
    async with conveyor.connect(f"sqlite:///{tmp_path}/wf.db", clock=clock) as backend:
        wf = b.build(
            backend.streamer,
            backend.record_store,
            backend.role_scheduler,
            timeout_store=backend.timeout_store,
            clock=clock,
        )
        async with asyncio.timeout(WAIT), wf:
            run_id = await wf.trigger("user-1")
            await await_timeout_insert(wf, "user-1", run_id, SyncStatus.EMAIL_SET)
            clock.advance(timedelta(hours=1))
            run = await wf.wait("user-1", run_id, SyncStatus.COMPLETED)
    assert run.object == {"email": "a@example.com", "done": "yes"}
    assert run.meta.version == 4


async def test_run_until_idle_sees_sqlite_receivers_catch_up(tmp_path: Path) -> None:
    b = Builder("idle check", dict, SyncStatus)
    b.add_step(SyncStatus.STARTED, _set_email, SyncStatus.EMAIL_SET)
    b.add_step(SyncStatus.EMAIL_SET, _cool_down_now, SyncStatus.COOLED_DOWN)
    b.add_step(SyncStatus.COOLED_DOWN, _finish, SyncStatus.COMPLETED)
    async with conveyor.connect(f"sqlite:///{tmp_path}/idle.db") as backend:
        wf = b.build(backend.streamer, backend.record_store, backend.role_scheduler)
        async with wf:
            run_ids = [await wf.trigger(f"user-{i}") for i in range(20)]
            await run_until_idle(wf, timeout=WAIT)
            runs = [await wf.lookup(run_id) for run_id in run_ids]
    assert {run.status for run in runs} == {SyncStatus.COMPLETED}


async def _cool_down_now(run: Run[dict[str, str], SyncStatus]) -> SyncStatus:
    return SyncStatus.COOLED_DOWN


# ---------------------------------------------------------------------------- roles


class _Holdings:
    """Who holds which role, as the holders report it; waits on changes."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self._changed = asyncio.Condition()

    async def set(self, role: str, member: str | None) -> None:
        async with self._changed:
            if member is None:
                self.held.pop(role, None)
            else:
                self.held[role] = member
            self._changed.notify_all()

    async def until(self, predicate: Callable[[dict[str, str]], bool]) -> None:
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: predicate(self.held))

    async def keep(self, scheduler: SQLiteRoleScheduler, role: str) -> None:
        """Hold ``role`` whenever granted, as the engine's supervisor does."""
        while True:
            async with scheduler.hold(role) as lease:
                await self.set(role, scheduler.member_id)
                try:
                    await lease.wait_lost()
                finally:
                    if self.held.get(role) == scheduler.member_id:
                        await self.set(role, None)


async def test_roles_move_to_a_member_that_waits_for_them_and_the_rest_stay_held(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "handover.db")
    first = await SQLiteRoleScheduler.open(path, lease_ttl=1.0, poll_interval=0.02)
    second = await SQLiteRoleScheduler.open(path, lease_ttl=1.0, poll_interval=0.02)
    holdings = _Holdings()
    roles = [f"role-{i}" for i in range(4)]
    tasks = [asyncio.create_task(holdings.keep(first, role)) for role in roles]
    try:
        # Given the first member holds all four roles
        await holdings.until(lambda held: len(held) == 4)
        assert set(holdings.held.values()) == {first.member_id}
        # When a second member comes to want one of them
        tasks.append(asyncio.create_task(holdings.keep(second, "role-0")))
        # Then it gets it (its fair share is two), and the roles only the first wants
        # stay with the first
        await holdings.until(lambda held: held.get("role-0") == second.member_id and len(held) == 4)
        assert [holdings.held[r] for r in roles[1:]] == [first.member_id] * 3
        assert second.held_roles() == ["role-0"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.close()
        await second.close()


async def test_a_lease_is_lost_at_its_deadline_when_it_cannot_be_renewed(tmp_path: Path) -> None:
    path = tmp_path / "deadline.db"
    # A 0.6 s lease whose renewals, once the file is locked, wait 3 * WAIT for the lock and
    # give up only after that: a lease lost only when its renewal fails would outlast WAIT
    scheduler = await SQLiteRoleScheduler.open(
        str(path),
        lease_ttl=0.6,
        poll_interval=0.05,
        busy_timeout=3 * WAIT,
        lock_timeout=3 * WAIT,
    )
    try:
        async with scheduler.hold("leader") as lease:
            # Given a held lease whose renewals cannot be written
            with _write_lock_held(path):
                # Then it is lost at its own deadline, well within WAIT
                await asyncio.wait_for(lease.wait_lost(), WAIT)
    finally:
        await scheduler.close()
