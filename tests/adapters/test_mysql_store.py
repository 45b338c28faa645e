"""The MySQL/MariaDB record store passes the record-store suites against the real server,
and keeps its promises beyond them (batches, one active run, exact foreign IDs, history
off, concurrent writers, a failure recorded against a write in flight, rows that do
not decode). Built on a streamer (``events=``) it passes ``PublishesEventsSuite``, and
its writes' events reach the log across topics and processes.

Each case gets a fresh store on this run's throw-away database (see ``_mysql_support``):
the record store's tables of its own table prefix, emptied.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from _mysql_support import mysql_url, open_mysql

import conveyor
from conveyor import (
    AdapterError,
    Builder,
    DecodeError,
    RecordNotFound,
    Run,
    RunState,
    VersionConflict,
    WorkflowInProgress,
)
from conveyor.abc import (
    Event,
    KeepsHistory,
    PublishesEvents,
    RecordFilter,
    RecordsFailures,
    RunQuery,
)
from conveyor.adapters.mysql import (
    MySQLDatabase,
    MySQLEventStreamer,
    MySQLRecordStore,
    MySQLRecordStoreWithoutHistory,
)
from conveyor.adapters.mysql._errors import error_code
from conveyor.adapters.mysql._record_store import record_store
from conveyor.adaptertest import (
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    ListsRunsSuite,
    PinsEventLocationSuite,
    PublishesEventsSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
    StoreAndStreamer,
    dummy_record,
    failure,
    insert,
    new_name,
    update,
)
from conveyor.adaptertest._fixtures import Status

__all__ = ["mysql_url"]

WAIT = 10.0
_OWN_TABLES = ("outbox", "history", "failures", "definitions", "settings", "records")


@asynccontextmanager
async def fresh_database(url: str, prefix: str, **options: Any) -> AsyncIterator[MySQLDatabase]:
    """A ``Database`` on ``prefix``'s migrated tables, the record store's emptied."""
    async with open_mysql(url, prefix, **options) as db:
        for table in _OWN_TABLES:
            await db.execute("emptying a table", f"DELETE FROM {db.tables.names[table]}")
        yield db


class OnMySQLRecordStore:
    """The ``store`` fixture of the record-store suites: a fresh ``MySQLRecordStore``."""

    @pytest.fixture
    async def store(self, mysql_url: str) -> AsyncIterator[MySQLRecordStore]:
        async with fresh_database(mysql_url, "suite_") as db:
            store = MySQLRecordStore(db)
            yield store
            await store.close()


class OnMySQLRecordStoreWithoutHistory:
    """The ``store`` fixture: a fresh ``MySQLRecordStoreWithoutHistory``."""

    @pytest.fixture
    async def store(self, mysql_url: str) -> AsyncIterator[MySQLRecordStoreWithoutHistory]:
        async with fresh_database(mysql_url, "suite_") as db:
            store = MySQLRecordStoreWithoutHistory(db)
            yield store
            await store.close()


class TestMySQLRecordStore(OnMySQLRecordStore, RecordStoreSuite):
    pass


class TestMySQLRecordStoreRecordsFailures(OnMySQLRecordStore, RecordsFailuresSuite):
    pass


class TestMySQLRecordStoreKeepsHistory(OnMySQLRecordStore, KeepsHistorySuite):
    pass


class TestMySQLRecordStoreKeepsDefinitions(OnMySQLRecordStore, KeepsDefinitionsSuite):
    pass


class TestMySQLRecordStorePinsEventLocation(OnMySQLRecordStore, PinsEventLocationSuite):
    pass


class TestMySQLRecordStoreListsRuns(OnMySQLRecordStore, ListsRunsSuite):
    pass


class TestMySQLRecordStoreWithoutHistory(OnMySQLRecordStoreWithoutHistory, RecordStoreSuite):
    pass


class TestMySQLRecordStoreWithoutHistoryRecordsFailures(
    OnMySQLRecordStoreWithoutHistory, RecordsFailuresSuite
):
    pass


class TestMySQLRecordStorePublishesEvents(PublishesEventsSuite):
    """The store ``conveyor.connect`` builds: it appends its events to the streamer's log."""

    @pytest.fixture
    async def store_and_streamer(self, mysql_url: str) -> AsyncIterator[StoreAndStreamer]:
        async with fresh_database(mysql_url, "publish_") as db:
            streamer = MySQLEventStreamer(db)
            store = MySQLRecordStore(db, events=streamer)
            yield StoreAndStreamer(store, streamer)
            await store.close()
            await streamer.close()


class TestMySQLRecordStoreWithoutHistoryPublishesEvents(PublishesEventsSuite):
    @pytest.fixture
    async def store_and_streamer(self, mysql_url: str) -> AsyncIterator[StoreAndStreamer]:
        async with fresh_database(mysql_url, "publish_") as db:
            streamer = MySQLEventStreamer(db)
            store = MySQLRecordStoreWithoutHistory(db, events=streamer)
            yield StoreAndStreamer(store, streamer)
            await store.close()
            await streamer.close()


# ---------------------------------------------------------------- beyond the suites


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[MySQLDatabase]:
    async with fresh_database(mysql_url, "store_") as database:
        yield database


@pytest.fixture
async def store(db: MySQLDatabase) -> AsyncIterator[MySQLRecordStore]:
    store = MySQLRecordStore(db)
    yield store
    await store.close()


async def test_a_batch_may_move_one_run_twice_in_order(store: MySQLRecordStore) -> None:
    first = insert(dummy_record(foreign_id="twice"))
    second = update(first.record, status=2)
    third = update(second.record, status=3, run_state=RunState.COMPLETED)

    outcomes = await store.store_many([first, second, third])

    assert list(outcomes) == [None, None, None]
    got = await store.lookup(first.record.run_id)
    assert (got.version, got.status, got.run_state) == (3, 3, RunState.COMPLETED)
    outbox = await store.list_outbox_events(first.record.workflow_name, 10)
    assert [e.id for e in outbox] == [first.outbox.id, second.outbox.id, third.outbox.id]
    assert [e.version for e in await store.history(first.record.run_id)] == [1, 2, 3]


async def test_long_batches_keep_an_outcome_per_write(store: MySQLRecordStore) -> None:
    # Given active runs, a finished one whose foreign ID has an active run, and a run at
    # version 2
    active = [dummy_record(foreign_id=f"a-{i}") for i in range(6)]
    done = dummy_record(foreign_id="a-0", run_state=RunState.COMPLETED)
    moved = dummy_record(foreign_id="moved")
    await store.store_many([insert(r) for r in [*active, done, moved]])
    at_2 = update(moved, status=2)
    await store.store(at_2)

    # When one batch inserts runs (one with a taken run ID, one with a busy foreign ID
    # among them) and then updates runs (stale, unknown, a revival of the finished one,
    # one moved twice, one written with its stored values)
    fresh = [dummy_record(foreign_id=f"f-{i}") for i in range(4)]
    inserts = [
        insert(fresh[0]),
        insert(fresh[1]),
        insert(active[1].replace(foreign_id="other")),  # the run ID exists
        insert(dummy_record(foreign_id="a-2")),  # a-2 has an active run
        insert(fresh[2]),
        insert(fresh[3]),
    ]
    first = update(active[3], status=2)
    updates = [
        update(active[0], status=2),
        update(moved, status=3),  # stale: moved is at version 2
        update(dummy_record(foreign_id="ghost"), status=2),  # never stored
        update(done, run_state=RunState.RUNNING),  # a second active run of a-0
        first,
        update(active[4], status=3),
        dataclasses.replace(update(at_2.record), record=at_2.record, expected_version=2),
        update(first.record, status=3),  # active[3] again: sees the first move
        update(active[5], status=2),
    ]
    outcomes = await store.store_many([*inserts, *updates])

    # Then every write has its own outcome, and exactly the applied ones are stored
    kinds = [type(o).__name__ if o is not None else None for o in outcomes]
    assert kinds == [
        None,
        None,
        "VersionConflict",
        "WorkflowInProgress",
        None,
        None,
        None,
        "VersionConflict",
        "VersionConflict",
        "WorkflowInProgress",
        None,
        None,
        None,
        None,
        None,
    ]
    stale = outcomes[7]
    assert isinstance(stale, VersionConflict)
    assert stale.actual_version == 2
    for r in fresh:
        assert (await store.lookup(r.run_id)).version == 1
    assert (await store.lookup(active[0].run_id)).status == 2
    assert (await store.lookup(active[3].run_id)).version == 3
    assert (await store.lookup(done.run_id)).run_state is RunState.COMPLETED
    assert (await store.lookup(moved.run_id)).version == 2
    applied = [w for w, o in zip([*inserts, *updates], outcomes, strict=True) if o is None]
    outbox = await store.list_outbox_events(moved.workflow_name, 1000)
    assert [e.id for e in outbox][-len(applied) :] == [w.outbox.id for w in applied]
    assert [e.version for e in await store.history(active[3].run_id)] == [1, 2, 3]


async def test_concurrent_batches_over_the_same_runs_apply_each_version_once(
    store: MySQLRecordStore,
) -> None:
    # Given runs that several batches move from version 1 at once, in different orders
    runs = [dummy_record(foreign_id=f"c-{i}") for i in range(30)]
    await store.store_many([insert(r) for r in runs])

    outcomes = await asyncio.gather(
        *(
            store.store_many([update(r, status=2) for r in (runs if i % 2 else runs[::-1])])
            for i in range(6)
        )
    )

    # Then each run moved once
    for j, r in enumerate(runs):
        assert sum(batch[j if i % 2 else -1 - j] is None for i, batch in enumerate(outcomes)) == 1
        assert (await store.lookup(r.run_id)).version == 2
    assert len(await store.list_outbox_events(runs[0].workflow_name, 1000)) == 60


async def test_an_update_that_would_make_a_second_active_run_fails_alone(
    store: MySQLRecordStore,
) -> None:
    # Given a finished run, an active run of the same foreign ID, and a bystander
    done = dummy_record(foreign_id="busy")
    await store.store(insert(done))
    finished = update(done, run_state=RunState.COMPLETED)
    await store.store(finished)
    active = dummy_record(foreign_id="busy")
    await store.store(insert(active))
    other = dummy_record(foreign_id="bystander")
    await store.store(insert(other))

    # When the finished run is revived next to an unrelated write
    revive = update(finished.record, run_state=RunState.RUNNING)
    moved = update(other, status=2)
    outcomes = await store.store_many([revive, moved])

    # Then the schema refuses the revival alone
    assert isinstance(outcomes[0], WorkflowInProgress)
    assert outcomes[1] is None
    assert (await store.lookup(done.run_id)).run_state is RunState.COMPLETED
    assert (await store.lookup(other.run_id)).status == 2
    outbox = await store.list_outbox_events(done.workflow_name, 100)
    assert revive.outbox.id not in {e.id for e in outbox}
    assert moved.outbox.id in {e.id for e in outbox}


async def test_a_write_of_the_stored_values_at_the_expected_version_applies(
    store: MySQLRecordStore,
) -> None:
    # Given a stored run (MySQL counts changed rows: a write of the same values and the
    # same version changes none, yet its compare-and-set holds)
    record = dummy_record()
    await store.store(insert(record))
    same = update(record)
    same = type(same)(record, same.outbox, expected_version=1)

    # When it is written again as it is, at its version
    await store.store(same)

    # Then the write applied (its outbox event is there), and a stale one still conflicts
    assert same.outbox.id in {e.id for e in await store.list_outbox_events(record.workflow_name, 9)}
    with pytest.raises(VersionConflict) as raised:
        await store.store(type(same)(record, same.outbox, expected_version=7))
    assert raised.value.actual_version == 1


async def test_concurrent_writes_of_one_version_apply_exactly_once(
    store: MySQLRecordStore,
) -> None:
    record = dummy_record(foreign_id="contended")
    await store.store(insert(record))

    outcomes = await asyncio.gather(
        *(store.store_many([update(record, status=2)]) for _ in range(8))
    )

    applied = [o for (o,) in outcomes if o is None]
    assert len(applied) == 1
    assert all(isinstance(o, VersionConflict) for (o,) in outcomes if o is not None)
    assert (await store.lookup(record.run_id)).version == 2


async def test_concurrent_triggers_of_one_foreign_id_start_one_run(
    store: MySQLRecordStore,
) -> None:
    runs = [dummy_record(foreign_id="raced") for _ in range(8)]

    outcomes = await asyncio.gather(*(store.store_many([insert(r)]) for r in runs))

    assert sum(o is None for (o,) in outcomes) == 1
    assert all(isinstance(o, WorkflowInProgress) for (o,) in outcomes if o is not None)
    listed = await store.list(runs[0].workflow_name, filter=RecordFilter(foreign_ids=("raced",)))
    assert len(listed) == 1


async def test_foreign_ids_are_exact_bytes_not_padded_or_folded(store: MySQLRecordStore) -> None:
    # Given foreign IDs that a PAD SPACE or case-insensitive collation would confuse
    names = ["order", "order ", "Order", "order\t", "ordér"]
    records = [dummy_record(foreign_id=n) for n in names]

    # When each starts a run, then every one is its own (no WorkflowInProgress)
    assert list(await store.store_many([insert(r) for r in records])) == [None] * len(names)

    # ... found by its own value alone, and a prefix matches by code point
    for r in records:
        assert (await store.latest(r.workflow_name, r.foreign_id)).run_id == r.run_id
        found = await store.list(r.workflow_name, filter=RecordFilter(foreign_ids=(r.foreign_id,)))
        assert [f.run_id for f in found] == [r.run_id]
    page = await store.list_runs(RunQuery(foreign_id_prefix="order"))
    assert sorted(r.foreign_id for r in page.records) == sorted(["order", "order ", "order\t"])


async def test_lookups_in_one_turn_share_a_query_and_fail_alone(
    store: MySQLRecordStore, db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [dummy_record(foreign_id=f"l-{i}") for i in range(20)]
    await store.store_many([insert(r) for r in records])
    queries: list[str] = []
    fetch = db.fetch

    async def counting(what: str, sql: str, args: Any = ()) -> Any:
        queries.append(what)
        return await fetch(what, sql, args)

    monkeypatch.setattr(db, "fetch", counting)

    got = await asyncio.gather(*(store.lookup(r.run_id) for r in records))
    assert [g.run_id for g in got] == [r.run_id for r in records]
    assert queries == ["looking up records"]

    missing, found = await asyncio.gather(
        store.lookup("nope"), store.lookup(records[0].run_id), return_exceptions=True
    )
    assert type(missing).__name__ == "RecordNotFound"
    assert getattr(found, "run_id", None) == records[0].run_id


async def test_a_cancelled_lookup_does_not_strand_the_others_of_its_turn(
    store: MySQLRecordStore,
) -> None:
    records = [dummy_record(foreign_id=f"c-{i}") for i in range(3)]
    await store.store_many([insert(r) for r in records])

    first = asyncio.create_task(store.lookup(records[0].run_id))
    others = [asyncio.create_task(store.lookup(r.run_id)) for r in records[1:]]
    await asyncio.sleep(0)
    first.cancel()

    got = await asyncio.wait_for(asyncio.gather(*others), WAIT)
    assert [g.run_id for g in got] == [r.run_id for r in records[1:]]


async def test_record_failure_waits_for_a_write_in_flight_and_then_keeps_nothing(
    store: MySQLRecordStore, db: MySQLDatabase
) -> None:
    # Given a run at version 1, and another connection that has moved it to version 2
    # without committing yet
    record = dummy_record()
    await store.store(insert(record))
    other = await db.connect()
    try:
        async with other.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(
                f"UPDATE {db.tables.records} SET version = 2 WHERE run_id = %s", (record.run_id,)
            )
            await cur.execute("SELECT CONNECTION_ID()")
            (writer,) = await cur.fetchone()
            # When an attempt that read version 1 records its failure
            recording = asyncio.create_task(store.record_failure(failure(record)))
            # ... it waits for the write (it does not insert for a version being replaced)
            await _blocked_by(db, int(writer))
            assert not recording.done()
            # When the write commits
            await cur.execute("COMMIT")
    finally:
        other.close()

    # Then the failure is not kept
    assert await asyncio.wait_for(recording, WAIT) is False
    assert list(await store.failures(record.run_id)) == []


async def _blocked_by(db: MySQLDatabase, connection_id: int) -> None:
    """Return once some transaction waits for a lock that ``connection_id`` holds."""
    sql = (
        "SELECT COUNT(*) FROM information_schema.innodb_lock_waits w "
        "JOIN information_schema.innodb_trx t ON t.trx_id = w.blocking_trx_id "
        "WHERE t.trx_mysql_thread_id = %s"
    )
    async with asyncio.timeout(WAIT):
        while True:
            (count,), *_ = await db.fetch("test", sql, [connection_id])
            if count:
                return
            # Nothing to wait on but the server's lock tables, which InnoDB refreshes only
            # after 0.1 s without a read: poll slower than that.
            await asyncio.sleep(0.15)


async def test_a_write_from_another_process_wakes_the_outbox_wait(
    db: MySQLDatabase, mysql_url: str
) -> None:
    # Given a relay's store waiting on an empty outbox, and another process's store
    # (its own pool: no in-process signal reaches the waiter)
    store = MySQLRecordStore(db)
    async with open_mysql(mysql_url, "store_") as other_db:
        writer = MySQLRecordStore(other_db)
        record = dummy_record()
        assert list(await store.list_outbox_events(record.workflow_name, 10)) == []
        waiting = asyncio.create_task(store.wait_for_outbox(record.workflow_name, 60.0))
        for _ in range(5):
            await asyncio.sleep(0)

        # When the other process writes a run
        await writer.store(insert(record))

        # Then the wait returns (by polling) well before its timeout
        await asyncio.wait_for(waiting, WAIT)
        assert [e.run_id for e in await store.list_outbox_events(record.workflow_name, 10)] == [
            record.run_id
        ]


async def test_without_history_writes_leave_no_history_rows(db: MySQLDatabase) -> None:
    # Given the store without history
    store = MySQLRecordStoreWithoutHistory(db)
    assert isinstance(store, RecordsFailures)
    assert not isinstance(store, KeepsHistory)

    # When runs are written, alone and in a batch, and a failure recorded
    record = dummy_record()
    await store.store(insert(record))
    await store.store_many([update(record, status=2), insert(dummy_record(foreign_id="b"))])
    assert await store.record_failure(failure(await store.lookup(record.run_id)))

    # Then the history table stays empty, and the failure is kept
    (count,), *_ = await db.fetch("test", f"SELECT COUNT(*) FROM {db.tables.history}")
    assert count == 0
    assert [f.version for f in await store.failures(record.run_id)] == [2]


async def test_the_history_option_picks_the_store(mysql_url: str) -> None:
    async with open_mysql(mysql_url, "store_") as on:
        assert isinstance(record_store(on), MySQLRecordStore)
    async with open_mysql(mysql_url, "store_", history=False) as off:
        chosen = record_store(off)
        assert isinstance(chosen, MySQLRecordStoreWithoutHistory)
        assert not isinstance(chosen, KeepsHistory)


async def test_a_workflow_name_too_long_for_its_column_fails_the_batch_cleanly(
    store: MySQLRecordStore,
) -> None:
    # Given a batch with a write whose workflow name is longer than 255 bytes
    good = insert(dummy_record(foreign_id="good"))
    long = insert(dummy_record("w" * 256))

    # Then the batch fails as a whole (strict mode refuses to cut the value) and none of
    # it is applied
    with pytest.raises(AdapterError, match="Data too long"):
        await store.store_many([good, long])
    assert list(await store.list(good.record.workflow_name)) == []


async def test_a_row_that_does_not_decode_fails_its_own_lookup_alone(
    store: MySQLRecordStore, db: MySQLDatabase
) -> None:
    # Given two runs, one of them corrupted behind the store's back (a run state outside
    # RunState, a foreign ID that is not UTF-8) and an outbox row with broken headers
    good, bad = dummy_record(foreign_id="good"), dummy_record(foreign_id="bad")
    await store.store_many([insert(good), insert(bad)])
    await db.execute(
        "corrupting",
        f"UPDATE {db.tables.records} SET run_state = 42, foreign_id = 0xff WHERE run_id = %s",
        [bad.run_id],
    )
    await db.execute(
        "corrupting",
        f"UPDATE {db.tables.outbox} SET headers = 'not json' WHERE run_id = %s",
        [bad.run_id],
    )

    # When both are looked up in one turn, then the bad one alone fails, with a stand-in
    got_good, got_bad = await asyncio.gather(
        store.lookup(good.run_id), store.lookup(bad.run_id), return_exceptions=True
    )
    assert getattr(got_good, "run_id", None) == good.run_id
    assert isinstance(got_bad, DecodeError)
    assert got_bad.run_id == bad.run_id
    assert got_bad.record is not None
    assert got_bad.record.run_state is RunState.UNKNOWN
    assert "run_state 42" in got_bad.record.meta.run_state_reason

    # ... it is listed as a stand-in among the healthy runs, and its outbox event is
    # handed out with empty headers
    listed = {r.run_id: r for r in await store.list(good.workflow_name)}
    assert listed[bad.run_id].run_state is RunState.UNKNOWN
    assert listed[good.run_id].run_state is RunState.INITIATED
    page = await store.list_runs(RunQuery())
    assert {r.run_id for r in page.records} == {good.run_id, bad.run_id}
    outbox = {e.run_id: e for e in await store.list_outbox_events(good.workflow_name, 10)}
    assert dict(outbox[bad.run_id].headers) == {}
    assert dict(outbox[good.run_id].headers)


# ---------------------------------------------------------------- publishing its events


async def _events_of(streamer: MySQLEventStreamer, topic: str, count: int) -> list[Event]:
    """The first ``count`` events of ``topic``, read from its start."""
    receiver = await streamer.new_receiver(topic, new_name("reader"))
    events: list[Event] = []
    try:
        async with asyncio.timeout(WAIT):
            while len(events) < count:
                events.extend(await receiver.recv(count - len(events)))
    finally:
        await receiver.close()
    return events


async def test_without_a_streamer_the_store_keeps_an_outbox(store: MySQLRecordStore) -> None:
    assert isinstance(store, PublishesEvents)
    assert store.publishes_to is None
    record = dummy_record()
    await store.store(insert(record))
    assert [e.run_id for e in await store.list_outbox_events(record.workflow_name, 9)] == [
        record.run_id
    ]


async def test_concurrent_batches_over_several_topics_commit_each_event_once(
    db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a publishing store and runs spread over three statuses (three topics), and a
    # count of the transactions the server rolled back (Database.transaction retries them)
    rolled_back: list[int | None] = []
    run = db.run

    async def counting(what: str, work: Any, **kw: Any) -> Any:
        try:
            return await run(what, work, **kw)
        except AdapterError as exc:
            cause = exc.__cause__
            rolled_back.append(None if cause is None else error_code(cause))
            raise

    monkeypatch.setattr(db, "run", counting)
    streamer = MySQLEventStreamer(db)
    store = MySQLRecordStore(db, events=streamer)
    workflow = new_name("wf")
    runs = [dummy_record(workflow, foreign_id=f"m-{i}") for i in range(18)]
    assert list(await store.store_many([insert(r) for r in runs])) == [None] * len(runs)

    # When batches that each move runs into all three topics, listed in opposite orders,
    # are written at once (a transaction appends to its topics in sorted order, so none
    # waits for another's topic row while holding one the other waits for)
    statuses = (Status.MIDDLE, Status.END, 7)

    def batch(i: int) -> list[Any]:
        mine = runs[i::6]
        writes = [update(r, status=statuses[j % 3]) for j, r in enumerate(mine)]
        return writes if i % 2 else writes[::-1]

    outcomes = await asyncio.gather(*(store.store_many(batch(i)) for i in range(6)))

    # Then every write applied, and each topic holds exactly its writes' events, with
    # IDs from 1 up without a gap
    assert all(o is None for batch_outcomes in outcomes for o in batch_outcomes)
    assert rolled_back == []  # no deadlock, not even one retried
    for k, status in enumerate(statuses):
        expected = {r.run_id for j, r in enumerate(runs) if (j // 6) % 3 == k}
        topic = update(runs[0], status=status).outbox.topic
        events = await _events_of(streamer, topic, len(expected))
        assert {e.foreign_id for e in events} == expected
        assert [e.id for e in events] == list(range(1, len(expected) + 1))
    assert list(await store.list_outbox_events(workflow, 100)) == []
    await store.close()
    await streamer.close()


async def test_a_published_write_wakes_a_reader_in_another_process(
    db: MySQLDatabase, mysql_url: str
) -> None:
    # Given a receiver in "another process" (its own database, pool and poll)
    async with open_mysql(mysql_url, "store_") as other_db:
        elsewhere = MySQLEventStreamer(other_db)
        record = dummy_record(new_name("wf"))
        write = insert(record)
        receiver = await elsewhere.new_receiver(write.outbox.topic, "reader", poll_interval=0.05)
        streamer = MySQLEventStreamer(db)
        store = MySQLRecordStore(db, events=streamer)

        # When this process's publishing store writes a run
        await store.store(write)

        # Then the other process's receiver gets its event (by polling)
        async with asyncio.timeout(WAIT):
            (event,) = await receiver.recv(5)
        assert (event.foreign_id, event.type) == (record.run_id, write.outbox.type)
        await receiver.close()
        await elsewhere.close()
        await store.close()
        await streamer.close()


async def test_connect_builds_a_publishing_store_and_its_workflows_run_no_relay(
    mysql_url: str,
) -> None:
    # Given the backend conveyor.connect builds on MySQL
    async with open_mysql(mysql_url, "connect_"):  # migrated
        pass
    url = f"{mysql_url}?table_prefix=connect_"
    async with conveyor.connect(url) as backend:
        store = backend.record_store
        assert isinstance(store, PublishesEvents)
        assert store.publishes_to is backend.streamer

        async def step(run: Run[dict[str, Any], Status]) -> Status:
            return Status.END

        b = Builder(new_name("wf"), dict, Status)
        b.add_step(Status.STARTED, step, Status.END)
        wf = b.build(backend.streamer, store, backend.role_scheduler)

        # When a run goes through a step
        async with wf:
            run_id = await wf.trigger("one")
            done = await asyncio.wait_for(wf.wait("one", run_id, Status.END), WAIT)

        # Then it finished, no outbox relay ran, and nothing is left in the outbox
        assert done.meta.version == 2
        assert "outbox-consumer" not in wf.process_names()
        assert list(await store.list_outbox_events(wf.name, 10)) == []


# ---------------------------------------------------------------- round trips and group commit


class _CountingCursor:
    """A cursor that counts the queries sent through it (the rest passes through)."""

    def __init__(self, cur: Any, queries: list[str]) -> None:
        self._cur = cur
        self._queries = queries

    async def execute(self, sql: str, args: Any = None) -> Any:
        self._queries.append(sql)
        return await self._cur.execute(sql, args)

    async def __aenter__(self) -> _CountingCursor:
        await self._cur.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._cur.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class _CountingConnection:
    def __init__(self, conn: Any, queries: list[str]) -> None:
        self._conn = conn
        self._queries = queries

    def cursor(self) -> _CountingCursor:
        return _CountingCursor(self._conn.cursor(), self._queries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def queries(db: MySQLDatabase, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query the record writes send (``storing records``), in order."""
    sent: list[str] = []
    run = db.run

    async def counting(what: str, work: Any, **kw: Any) -> Any:
        if what != "storing records":
            return await run(what, work, **kw)
        return await run(what, lambda conn: work(_CountingConnection(conn, sent)), **kw)

    monkeypatch.setattr(db, "run", counting)
    return sent


@pytest.mark.parametrize("publishing", [True, False])
async def test_a_batch_whose_writes_all_apply_is_one_query(
    db: MySQLDatabase, queries: list[str], publishing: bool
) -> None:
    # Given runs to move, and new runs of two workflows (events on several topics)
    streamer = MySQLEventStreamer(db)
    store = MySQLRecordStore(db, events=streamer if publishing else None)
    moved = [dummy_record(foreign_id=f"q-{i}") for i in range(3)]
    await store.store_many([insert(r) for r in moved])
    queries.clear()

    # When a batch of updates and inserts that all apply is stored
    batch = [update(r, status=Status.MIDDLE) for r in moved]
    batch += [insert(dummy_record(new_name("wf"), foreign_id=f"n-{i}")) for i in range(3)]
    assert list(await store.store_many(batch)) == [None] * 6

    # Then the whole transaction was one query, BEGIN to COMMIT
    assert len(queries) == 1
    assert queries[0].startswith("BEGIN; ")
    assert queries[0].endswith("; COMMIT")
    assert (await store.lookup(moved[0].run_id)).version == 2
    assert [e.version for e in await store.history(moved[0].run_id)] == [1, 2]
    await store.close()
    await streamer.close()


async def test_a_batch_with_a_write_that_does_not_apply_is_written_again_one_by_one(
    db: MySQLDatabase, queries: list[str]
) -> None:
    # Given runs at version 2 on a publishing store (their events on one topic)
    streamer = MySQLEventStreamer(db)
    store = MySQLRecordStore(db, events=streamer)
    runs = [dummy_record(new_name("wf"), foreign_id=f"r-{i}") for i in range(3)]
    workflow_runs = [dummy_record(runs[0].workflow_name, foreign_id=f"s-{i}") for i in range(3)]
    await store.store_many([insert(r) for r in workflow_runs])
    at_2 = [update(r, status=Status.MIDDLE) for r in workflow_runs]
    await store.store_many(at_2)
    queries.clear()

    # When a batch moves them on, one of them from a stale version
    stale = update(workflow_runs[1], status=Status.END)  # expects version 1
    batch = [update(at_2[0].record, status=Status.END), stale]
    batch.append(update(at_2[2].record, status=Status.END))
    outcomes = await store.store_many(batch)

    # Then the stale one alone conflicts: the query that assumed all apply was rolled
    # back, and the careful way applied the others
    assert outcomes[0] is None
    assert isinstance(outcomes[1], VersionConflict)
    assert outcomes[1].actual_version == 2
    assert outcomes[2] is None
    assert queries[0].startswith("BEGIN; ")
    assert "BEGIN" in queries[1:]  # then Database.transaction, statement by statement
    assert [e.version for e in await store.history(workflow_runs[1].run_id)] == [1, 2]
    assert [e.version for e in await store.history(workflow_runs[0].run_id)] == [1, 2, 3]

    # ... and the topic holds the applied writes' events with IDs from 1 without a gap
    # (the rolled-back attempt took none)
    topic = batch[0].outbox.topic
    events = await _events_of(streamer, topic, 2)
    assert [e.id for e in events] == [1, 2]
    assert [e.foreign_id for e in events] == [workflow_runs[0].run_id, workflow_runs[2].run_id]
    await store.close()
    await streamer.close()


async def test_concurrent_single_writes_share_a_transaction(
    db: MySQLDatabase, queries: list[str]
) -> None:
    # Given a publishing store
    streamer = MySQLEventStreamer(db)
    store = MySQLRecordStore(db, events=streamer)
    workflow = new_name("wf")
    runs = [dummy_record(workflow, foreign_id=f"t-{i}") for i in range(8)]

    # When eight triggers arrive at once
    await asyncio.gather(*(store.store(insert(r)) for r in runs))

    # Then the first went alone and the seven that came meanwhile together: two queries
    assert len(queries) == 2
    for r in runs:
        assert (await store.lookup(r.run_id)).version == 1
    events = await _events_of(streamer, insert(runs[0]).outbox.topic, 8)
    assert sorted(e.foreign_id for e in events) == sorted(r.run_id for r in runs)
    await store.close()
    await streamer.close()


async def test_concurrent_single_triggers_of_one_foreign_id_start_one_run(
    store: MySQLRecordStore,
) -> None:
    runs = [dummy_record(foreign_id="raced-alone") for _ in range(8)]

    outcomes = await asyncio.gather(*(store.store(insert(r)) for r in runs), return_exceptions=True)

    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, WorkflowInProgress) for o in outcomes if o is not None)


async def test_a_single_write_the_server_refuses_fails_alone_in_its_shared_transaction(
    store: MySQLRecordStore,
) -> None:
    # Given single writes that arrive together, one of them too long for its column
    good = [dummy_record(foreign_id=f"ok-{i}") for i in range(3)]
    long = dummy_record("w" * 256)
    first = asyncio.ensure_future(store.store(insert(dummy_record(foreign_id="first"))))
    await asyncio.sleep(0)  # the first is in flight: the others queue behind it

    # When they are stored
    outcomes = await asyncio.gather(
        *(store.store(insert(r)) for r in (good[0], long, good[1], good[2])),
        return_exceptions=True,
    )
    await first

    # Then the long one fails with the server's refusal, and the others are stored
    assert isinstance(outcomes[1], AdapterError)
    assert "Data too long" in str(outcomes[1])
    assert [outcomes[0], outcomes[2], outcomes[3]] == [None, None, None]
    for r in good:
        assert (await store.lookup(r.run_id)).version == 1


async def test_a_cancelled_single_write_leaves_the_others_of_its_batch_alone(
    store: MySQLRecordStore,
) -> None:
    # Given a write in flight and two queued behind it
    runs = [dummy_record(foreign_id=f"x-{i}") for i in range(3)]
    tasks = [asyncio.ensure_future(store.store(insert(r))) for r in runs]
    await asyncio.sleep(0)

    # When the first queued caller is cancelled before its batch goes
    tasks[1].cancel()
    await asyncio.wait_for(asyncio.gather(tasks[0], tasks[2]), WAIT)

    # Then the others are stored, and the cancelled write was not (it never went)
    assert (await store.lookup(runs[0].run_id)).version == 1
    assert (await store.lookup(runs[2].run_id)).version == 1
    with pytest.raises(RecordNotFound):
        await store.lookup(runs[1].run_id)
