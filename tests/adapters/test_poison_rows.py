"""Poison rows never block, on SQLite and PostgreSQL: rows corrupted with plain SQL.

A ``records`` row that does not decode fails its own ``lookup``/``latest`` alone (a
``DecodeError`` with the run ID and a stand-in; a lookup of a healthy run in the same
PostgreSQL batch is answered) and is listed as a stand-in; an outbox or event row whose
headers do not decode is handed out with empty headers, and what follows it still is.

Rows are written through one "process" (store, streamer) and read through another (its
own store and streamer; on PostgreSQL its own ``PostgresDatabase``), so that reads come
from the tables, not from what the writing process keeps in memory.

No ``adaptertest`` suite case covers this: corrupting a row takes the backend's own SQL.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _pg_support import open_database, pg_url

import conveyor
from conveyor import RecordNotFound, RunState
from conveyor.abc import EventStreamer, OutgoingEvent, RecordStore
from conveyor.adapters.postgres import PostgresEventStreamer, PostgresRecordStore
from conveyor.adapters.sqlite import SQLiteEventStreamer, SQLiteRecordStore
from conveyor.adaptertest import dummy_record, insert, new_name
from conveyor.adaptertest._fixtures import assert_record_equal

__all__ = ["pg_url"]

WAIT = 10.0
SCHEMA = "poison_tests"

Corrupt = Callable[..., Awaitable[None]]
"""``corrupt(table, assignment, **where)``: ``UPDATE <table> SET <assignment> WHERE ...``."""


@dataclass
class Backend:
    """One backend as two processes: ``store``/``streamer`` write, ``reader``/``reading``
    read, and ``corrupt`` changes rows behind their backs."""

    kind: str
    store: RecordStore
    streamer: EventStreamer
    reader: RecordStore
    reading: SQLiteEventStreamer | PostgresEventStreamer
    corrupt: Corrupt
    count_lookup_queries: Callable[[], list[int]]
    """Start counting the reader's lookup queries; the list grows by one per query (on
    SQLite, where lookups are not batched, it stays empty)."""


async def _sqlite(tmp_path: Path, stack: AsyncExitStack) -> Backend:
    path = str(tmp_path / "poison.db")
    store = await SQLiteRecordStore.open(path)
    stack.push_async_callback(store.close)
    reader = await SQLiteRecordStore.open(path)
    stack.push_async_callback(reader.close)
    streamer = await SQLiteEventStreamer.open(path)
    stack.push_async_callback(streamer.close)
    reading = await SQLiteEventStreamer.open(path)
    stack.push_async_callback(reading.close)

    async def corrupt(table: str, assignment: str, **where: object) -> None:
        conn = sqlite3.connect(path)
        try:
            condition = " AND ".join(f"{column} = ?" for column in where)
            with conn:
                cur = conn.execute(
                    f"UPDATE {table} SET {assignment} WHERE {condition}", tuple(where.values())
                )
            assert cur.rowcount == 1
        finally:
            conn.close()

    return Backend("sqlite", store, streamer, reader, reading, corrupt, list)


async def _postgres(url: str, stack: AsyncExitStack) -> Backend:
    db = await stack.enter_async_context(open_database(url, SCHEMA, fresh=True))
    other = await stack.enter_async_context(open_database(url, SCHEMA))
    streamer = PostgresEventStreamer(db)
    stack.push_async_callback(streamer.close)
    store = PostgresRecordStore(db)
    stack.push_async_callback(store.close)
    reading = PostgresEventStreamer(other)
    stack.push_async_callback(reading.close)
    reader = PostgresRecordStore(other)
    stack.push_async_callback(reader.close)

    async def corrupt(table: str, assignment: str, **where: object) -> None:
        condition = " AND ".join(f"{column} = ${i}" for i, column in enumerate(where, 1))
        sql = f"UPDATE {db.tables.names[table]} SET {assignment} WHERE {condition}"

        async def update(conn: Any) -> str:
            return str(await conn.execute(sql, *where.values()))

        assert await db.run("corrupting a row", update) == "UPDATE 1"

    def count_lookup_queries() -> list[int]:
        queries: list[int] = []
        fetch = other.fetch

        async def counting(what: str, sql: str, *args: object) -> Any:
            if what == "looking up records":
                queries.append(len(args[0]))  # type: ignore[arg-type]
            return await fetch(what, sql, *args)

        other.fetch = counting  # type: ignore[method-assign]
        return queries

    return Backend("postgres", store, streamer, reader, reading, corrupt, count_lookup_queries)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    """The backend (the record cases parametrize it themselves)."""
    return str(request.param)


@pytest.fixture
def server(request: pytest.FixtureRequest, kind: str) -> str:
    """The PostgreSQL URL for the postgres cases (asked for here, outside the event loop)."""
    return str(request.getfixturevalue("pg_url")) if kind == "postgres" else ""


@pytest.fixture
async def backend(kind: str, server: str, tmp_path: Path) -> AsyncIterator[Backend]:
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            yield await _sqlite(tmp_path, stack)
        else:
            yield await _postgres(server, stack)


# The corruptions of a records row, per backend: the SET clause, and what the stand-in's
# reason says. (SQLite keeps ``reached`` as comma-separated text and checks no types;
# PostgreSQL's columns are typed, so a NULL in the array is what can be wrong there.)
RECORD_CASES = {
    "sqlite": [
        ("run_state = 42", "run_state 42 is not a RunState"),
        ("run_state = 'paused'", "run_state 'paused' is not a RunState"),
        ("reached = 'not json'", "reached 'not json' is not a list of statuses"),
        ("version = 'two'", "version 'two' is not an integer"),
        ("created_at = 'yesterday'", "created_at 'yesterday' is not a timestamp"),
        ("object = 12", "object 12 is not bytes"),
    ],
    "postgres": [
        ("run_state = 42", "run_state 42 is not a RunState"),
        ("run_state = -1", "run_state -1 is not a RunState"),
        ("reached = '{1,NULL}'", "reached <list> is not a list of statuses"),
    ],
}


def _record_cases() -> list[Any]:
    cases = []
    for kind, corruptions in RECORD_CASES.items():
        marks = [pytest.mark.postgres] if kind == "postgres" else []
        for assignment, problem in corruptions:
            cases.append(
                pytest.param(kind, assignment, problem, id=f"{kind}:{assignment}", marks=marks)
            )
    return cases


async def _runs(backend: Backend, workflow: str, *names: str) -> list[conveyor.Record]:
    records = [dummy_record(workflow, foreign_id=name) for name in names]
    for record in records:
        await backend.store.store(insert(record))
    return records


# ---------------------------------------------------------------- records


@pytest.mark.parametrize(("kind", "assignment", "problem"), _record_cases())
async def test_a_record_that_does_not_decode_fails_its_lookup_alone(
    backend: Backend, assignment: str, problem: str
) -> None:
    workflow = new_name("wf")
    healthy, bad = await _runs(backend, workflow, "healthy", "bad")
    await backend.corrupt("records", assignment, run_id=bad.run_id)
    queries = backend.count_lookup_queries()

    # Both looked up at once: on PostgreSQL one query answers both callers
    got, failed = await asyncio.gather(
        backend.reader.lookup(healthy.run_id),
        backend.reader.lookup(bad.run_id),
        return_exceptions=True,
    )

    assert isinstance(got, conveyor.Record)
    assert_record_equal(got, healthy)
    assert isinstance(failed, conveyor.DecodeError)
    assert failed.run_id == bad.run_id
    assert str(failed) == f"undecodable record: {problem}"
    _assert_stand_in(failed.record, bad, problem, assignment)
    if backend.kind == "postgres":
        assert queries == [2], "both lookups share one statement"
    # A lookup of the bad run alone fails the same way; the healthy run still reads.
    with pytest.raises(conveyor.DecodeError) as again:
        await backend.reader.lookup(bad.run_id)
    assert again.value.run_id == bad.run_id
    assert_record_equal(await backend.reader.lookup(healthy.run_id), healthy)


@pytest.mark.parametrize(("kind", "assignment", "problem"), _record_cases())
async def test_latest_of_a_record_that_does_not_decode_raises_with_its_stand_in(
    backend: Backend, assignment: str, problem: str
) -> None:
    workflow = new_name("wf")
    healthy, bad = await _runs(backend, workflow, "healthy", "bad")
    await backend.corrupt("records", assignment, run_id=bad.run_id)

    with pytest.raises(conveyor.DecodeError) as raised:
        await backend.reader.latest(workflow, "bad")

    assert raised.value.run_id == bad.run_id
    _assert_stand_in(raised.value.record, bad, problem, assignment)
    assert_record_equal(await backend.reader.latest(workflow, "healthy"), healthy)
    with pytest.raises(RecordNotFound):
        await backend.reader.latest(workflow, "nobody")


@pytest.mark.parametrize(("kind", "assignment", "problem"), _record_cases())
async def test_list_returns_the_healthy_records_and_the_stand_in(
    backend: Backend, assignment: str, problem: str
) -> None:
    workflow = new_name("wf")
    first, bad, last = await _runs(backend, workflow, "first", "bad", "last")
    await backend.corrupt("records", assignment, run_id=bad.run_id)

    listed = await backend.reader.list(workflow)

    # (A created_at that is not a timestamp sorts where the database puts it.)
    by_id = {r.run_id: r for r in listed}
    assert len(listed) == 3
    assert_record_equal(by_id[first.run_id], first)
    _assert_stand_in(by_id[bad.run_id], bad, problem, assignment)
    assert_record_equal(by_id[last.run_id], last)
    # Across workflows too (what ``conveyor runs list`` shows without a workflow).
    everything = await backend.reader.list(limit=100)
    assert {r.run_id for r in everything} >= {first.run_id, bad.run_id, last.run_id}


@pytest.mark.parametrize("kind", ["sqlite"])
async def test_an_object_stored_as_text_on_sqlite_still_decodes(backend: Backend) -> None:
    # SQLite keeps whatever type it is given: a text object is the same JSON.
    (record,) = await _runs(backend, new_name("wf"), "texted")
    await backend.corrupt("records", "object = CAST(object AS TEXT)", run_id=record.run_id)

    assert_record_equal(await backend.reader.lookup(record.run_id), record)


def _assert_stand_in(
    stand_in: conveyor.Record | None, stored: conveyor.Record, problem: str, assignment: str
) -> None:
    """The stand-in keeps the row's identity, status, object and version (unless the
    corruption is of that column: then 0 or b""), has run state UNKNOWN and says what is
    wrong."""
    assert stand_in is not None
    assert (stand_in.workflow_name, stand_in.foreign_id, stand_in.run_id) == (
        stored.workflow_name,
        stored.foreign_id,
        stored.run_id,
    )
    assert stand_in.run_state is RunState.UNKNOWN
    assert stand_in.status == stored.status
    assert stand_in.object == (b"" if assignment.startswith("object") else stored.object)
    assert stand_in.version == (0 if assignment.startswith("version") else stored.version)
    assert stand_in.meta.run_state_reason == f"undecodable record: {problem}"
    if not assignment.startswith("created_at"):
        assert stand_in.created_at == stored.created_at


# ---------------------------------------------------------------- outbox and events


# Headers that do not decode: not JSON, JSON that is not an object of strings. (SQLite
# keeps them as text, PostgreSQL as bytea: the same literal serves both.)
GARBAGE = ["'garbage'", "'{\"n\": 1}'", "'[]'"]


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_an_outbox_row_whose_headers_do_not_decode_is_listed_with_none(
    backend: Backend, garbage: str, caplog: pytest.LogCaptureFixture
) -> None:
    workflow = new_name("wf")
    first, bad, last = await _runs(backend, workflow, "first", "bad", "last")
    await backend.corrupt("outbox", f"headers = {garbage}", run_id=bad.run_id)
    caplog.set_level(logging.WARNING, logger="conveyor.adapters")

    listed = await backend.reader.list_outbox_events(workflow, 10)
    again = await backend.reader.list_outbox_events(workflow, 10)

    assert [e.run_id for e in listed] == [first.run_id, bad.run_id, last.run_id]
    assert listed[0].headers == insert(first).outbox.headers
    assert listed[1].headers == {}
    assert listed[1].id == [e.id for e in again][1]
    assert listed[2].headers == insert(last).outbox.headers
    # Logged once (not at the second list), with the run ID and without the headers.
    warnings = [r for r in caplog.records if bad.run_id in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert warnings[0].levelno == logging.WARNING
    assert "garbage" not in warnings[0].getMessage()
    assert warnings[0].conveyor == {"workflow": workflow, "run_id": bad.run_id}  # type: ignore[attr-defined]
    # The relay can go on: the listed events delete as usual.
    await backend.reader.delete_outbox_events([e.id for e in listed])
    if isinstance(backend.reader, PostgresRecordStore):
        await backend.reader.flush()
    assert await backend.reader.list_outbox_events(workflow, 10) == []


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_a_receiver_hands_out_an_event_whose_headers_do_not_decode_and_goes_on(
    backend: Backend, garbage: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = new_name("topic")
    sender = await backend.streamer.new_sender(topic)
    await sender.send_many(
        [OutgoingEvent(f"run-{i}", 1, {"n": str(i), "topic": topic}) for i in range(4)]
    )
    await backend.corrupt("events", f"headers = {garbage}", topic=topic, foreign_id="run-1")
    caplog.set_level(logging.WARNING, logger="conveyor.adapters")

    receiver = await backend.reading.new_receiver(topic, new_name("reader"))
    try:
        events: list[Any] = []
        async with asyncio.timeout(WAIT):
            while len(events) < 4:
                batch = await receiver.recv(1)  # one at a time: the bad one alone, then on
                for event in batch:
                    await receiver.ack(event)
                events.extend(batch)
    finally:
        await receiver.close()

    assert [e.foreign_id for e in events] == ["run-0", "run-1", "run-2", "run-3"]
    assert [e.headers for e in events] == [
        {"n": "0", "topic": topic},
        {},
        {"n": "2", "topic": topic},
        {"n": "3", "topic": topic},
    ]
    warnings = [r for r in caplog.records if topic in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "run-1" in warnings[0].getMessage()


async def test_a_tail_hands_out_an_event_whose_headers_do_not_decode(backend: Backend) -> None:
    topic = new_name("topic")
    tail = await backend.reading.tail(topic)
    try:
        sender = await backend.streamer.new_sender(topic)
        await sender.send_many([OutgoingEvent(f"run-{i}", 1, {"n": str(i)}) for i in range(3)])
        await backend.corrupt("events", "headers = 'garbage'", topic=topic, foreign_id="run-0")

        events: list[Any] = []
        async with asyncio.timeout(WAIT):
            async for batch in tail:
                events.extend(batch.events)
                if len(events) >= 3:
                    break
    finally:
        await tail.close()

    assert [(e.foreign_id, e.headers) for e in events] == [
        ("run-0", {}),
        ("run-1", {"n": "1"}),
        ("run-2", {"n": "2"}),
    ]
