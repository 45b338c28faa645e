"""A record store that appends its events to the event log in the write's transaction.

``conveyor.connect("postgresql://...")`` builds the record store this way (records and
events in one database): no outbox row, no relay, one commit per write. "Another
process" is another ``PostgresDatabase`` (its own pool and LISTEN connection).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from _pg_support import migrated, open_database, pg_url

import conveyor
from conveyor import RunState, VersionConflict, WorkflowInProgress
from conveyor.abc import Event, Header
from conveyor.adapters.postgres import (
    PostgresDatabase,
    PostgresEventStreamer,
    PostgresRecordStore,
)
from conveyor.adaptertest import dummy_record, insert, new_name, update

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

SCHEMA = "direct_tests"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    async with open_database(pg_url, SCHEMA) as database:
        assert await database.wait_listening(5.0)
        yield database


@pytest.fixture
async def other_db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    async with open_database(pg_url, SCHEMA, poll_interval=30.0) as database:
        assert await database.wait_listening(5.0)
        yield database


async def _collect(receiver: object, count: int, timeout: float = 10.0) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            got = await receiver.recv(64)  # type: ignore[attr-defined]
            for event in got:
                await receiver.ack(event)  # type: ignore[attr-defined]
            events.extend(got)
    return events


async def test_each_applied_write_appends_its_event_and_no_outbox_row(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given a direct store and a reader in another process
    streamer = PostgresEventStreamer(db)
    store = PostgresRecordStore(db, events=streamer)
    workflow = new_name("wf")
    first = dummy_record(workflow, foreign_id="a")
    second = dummy_record(workflow, foreign_id="b")
    topic = insert(first).outbox.topic
    reader = await PostgresEventStreamer(other_db).new_receiver(topic, new_name("r"))

    # When two runs are created and one of them moves on, next to a stale write
    assert await store.store_many([insert(first), insert(second)]) == [None, None]
    moved = update(first, status=first.status)
    stale = update(first, status=first.status)
    outcomes = await store.store_many([moved])
    (conflict,) = await store.store_many([stale])

    # Then the log holds exactly the applied writes' events, in order, with their headers
    assert outcomes == [None]
    assert isinstance(conflict, VersionConflict)
    events = await _collect(reader, 3)
    assert [e.foreign_id for e in events] == [first.run_id, second.run_id, first.run_id]
    assert [e.headers[Header.RECORD_VERSION] for e in events] == ["1", "1", "2"]
    assert [e.id for e in events] == [1, 2, 3]
    assert await store.list_outbox_events(workflow, 10) == []
    # Nothing for the stale write: the next event in the log is the next applied write's.
    assert await store.store_many([update(moved.record, status=first.status)]) == [None]
    (after,) = await _collect(reader, 1)
    assert (after.id, after.headers[Header.RECORD_VERSION]) == (4, "3")


async def test_a_second_active_run_is_refused_without_an_event(db: PostgresDatabase) -> None:
    streamer = PostgresEventStreamer(db)
    store = PostgresRecordStore(db, events=streamer)
    workflow = new_name("wf")
    active = dummy_record(workflow, foreign_id="busy")
    await store.store(insert(active))
    topic = insert(active).outbox.topic
    reader = await streamer.new_receiver(topic, new_name("r"))

    with pytest.raises(WorkflowInProgress):
        await store.store(insert(dummy_record(workflow, foreign_id="busy")))
    # A batch with the clash in it goes write by write: the others still apply.
    other = dummy_record(workflow, foreign_id="free")
    outcomes = await store.store_many(
        [insert(dummy_record(workflow, foreign_id="busy")), insert(other)]
    )

    assert isinstance(outcomes[0], WorkflowInProgress)
    assert outcomes[1] is None
    events = await _collect(reader, 2)
    assert [e.foreign_id for e in events] == [active.run_id, other.run_id]


async def test_a_batch_moving_one_run_twice_appends_both_events_in_order(
    db: PostgresDatabase,
) -> None:
    streamer = PostgresEventStreamer(db)
    store = PostgresRecordStore(db, events=streamer)
    workflow = new_name("wf")
    record = dummy_record(workflow, foreign_id="twice")
    first = insert(record)
    second = update(first.record, status=2)
    third = update(second.record, status=3, run_state=RunState.COMPLETED)
    receivers = {
        w.outbox.topic: await streamer.new_receiver(w.outbox.topic, new_name("r"))
        for w in (first, second, third)
    }

    assert list(await store.store_many([first, second, third])) == [None, None, None]

    for write in (first, second, third):
        (event,) = await _collect(receivers[write.outbox.topic], 1)
        assert event.headers[Header.RECORD_VERSION] == str(write.record.version)


async def test_concurrent_direct_writers_on_one_topic_lose_nothing_and_never_deadlock(
    db: PostgresDatabase, other_db: PostgresDatabase
) -> None:
    # Given three writers (two processes) whose batches each touch two topics
    workflow = new_name("wf")
    stores = [PostgresRecordStore(d, events=PostgresEventStreamer(d)) for d in (db, other_db, db)]
    rng = random.Random(11)
    per_writer = 30
    written: Counter[str] = Counter()

    async def writer(w: int) -> None:
        for i in range(per_writer):
            a = dummy_record(workflow, foreign_id=f"{w}-{i}-a")
            b = dummy_record(workflow, foreign_id=f"{w}-{i}-b")
            writes = [insert(a), insert(b)]
            assert list(await stores[w].store_many(writes)) == [None, None]
            moves = [update(a, run_state=RunState.COMPLETED), update(b, status=2)]
            rng.shuffle(moves)
            assert list(await stores[w].store_many(moves)) == [None, None]
            written.update(x.outbox.topic for x in (*writes, *moves))

    # When they write at the same time
    await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(3))), 30.0)

    # Then each topic's events are all there once, IDs 1..n with no gap
    assert len(written) == 3
    reader_streamer = PostgresEventStreamer(other_db)
    for topic, count in written.items():
        receiver = await reader_streamer.new_receiver(topic, new_name("r"))
        events = await _collect(receiver, count)
        assert [e.id for e in events] == list(range(1, count + 1))
        await receiver.close()


async def test_connect_builds_a_store_that_writes_events_directly(pg_url: str) -> None:
    await migrated(pg_url, SCHEMA)
    async with conveyor.connect(f"{pg_url}?schema={SCHEMA}") as backend:
        workflow = new_name("wf")
        record = dummy_record(workflow, foreign_id="via-connect")
        write = insert(record)
        reader = await backend.streamer.new_receiver(write.outbox.topic, new_name("r"))

        await backend.record_store.store(write)

        (event,) = await _collect(reader, 1)
        assert event.foreign_id == record.run_id
        assert await backend.record_store.list_outbox_events(workflow, 10) == []
        await reader.close()
