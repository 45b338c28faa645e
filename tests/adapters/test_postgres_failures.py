"""PostgreSQL failures and history beyond the suites: every statement served by an index,
the compare-and-insert against a write in flight, history off, and the upgrade of a
version-1 schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from _pg_support import open_database, pg_url

import conveyor
from conveyor import RunState
from conveyor.abc import KeepsHistory, RecordsFailures
from conveyor.adapters.postgres import (
    PostgresDatabase,
    PostgresRecordStore,
    PostgresRecordStoreWithoutHistory,
    migrate,
)
from conveyor.adapters.postgres._failures import FailureSQL
from conveyor.adapters.postgres._options import Tables
from conveyor.adapters.postgres._record_sql import batch, single
from conveyor.adapters.postgres._schema import migrations
from conveyor.adaptertest import dummy_record, failure, insert, update

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

WAIT = 10.0


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    async with open_database(pg_url, "failure_tests", fresh=True) as database:
        yield database


async def _plan(db: PostgresDatabase, sql: str, *args: object) -> str:
    async with db.connection("test") as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # only possible without an index
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))


async def test_failure_and_history_reads_are_served_by_indexes(db: PostgresDatabase) -> None:
    sql = FailureSQL.build(db.tables)
    plans = {
        "retries_due": await _plan(db, sql.retries_due, "wf", "process", 100),
        "history": await _plan(db, sql.history, "run"),
        "failures": await _plan(db, sql.failures, "run"),
        "failures_of_version": await _plan(db, sql.failures_of_version, "run", 1),
    }
    for name, plan in plans.items():
        assert "Seq Scan" not in plan, (name, plan)
        assert "Index" in plan, (name, plan)
    # retries_due walks the process's due failures in the order it returns them
    assert "failures_due" in plans["retries_due"], plans["retries_due"]


async def test_record_failure_and_the_write_statements_use_indexes(db: PostgresDatabase) -> None:
    # The compare-and-insert finds the run by its key
    record = dummy_record()
    f = failure(record)
    fields = (f.workflow_name, f.run_id, f.version, f.attempt, f.process, f.error_type)
    args = (*fields, f.message, f.failed_at, f.next_attempt_at)
    recorded = await _plan(db, FailureSQL.build(db.tables).record, *args)
    assert "Seq Scan" not in recorded, recorded

    # ... and the writes' failure scrubs (single and batch) find the run's failures by key
    t, others = db.tables, db.others_listen_sql
    logged = {"outbox": t.outbox, "history": t.history, "failures": t.failures}
    writes = [update(record, run_state=RunState.DATA_DELETED)]
    two = [*writes, update(dummy_record(foreign_id="other"), status=2)]
    for stmt, chosen, scrubs in (
        (single(t.records, t.channel, others, new=False, **logged), writes, True),
        (single(t.records, t.channel, others, new=True, **logged), [insert(record)], False),
        (batch(t.records, t.channel, others, **logged), two, True),
    ):
        notify: object = False if not stmt.is_batch else []
        plan = await _plan(db, stmt.sql, *stmt.args(chosen), notify, db.member_id)
        assert "Insert on history" in plan, plan
        assert "Seq Scan on failures" not in plan, plan
        assert "Seq Scan on records" not in plan, plan
        if scrubs:  # a write to DataDeleted (else the scrub is planned away)
            assert "failures_key" in plan, plan


async def test_record_failure_waits_for_a_write_in_flight_and_then_keeps_nothing(
    db: PostgresDatabase,
) -> None:
    # Given a run at version 1, and another connection that has moved it to version 2
    # without committing yet
    store = PostgresRecordStore(db)
    record = dummy_record()
    await store.store(insert(record))
    async with db.connection("test") as other:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            f"UPDATE {db.tables.records} SET version = 2 WHERE run_id = $1", record.run_id
        )
        writer = await other.fetchval("SELECT pg_backend_pid()")
        # When an attempt that read version 1 records its failure
        recording = asyncio.create_task(store.record_failure(failure(record)))
        # ... it waits for the write (it does not insert for a version being replaced)
        await _blocked_by(db, writer)
        assert not recording.done()
        # When the write commits
        await tx.commit()

    # Then the failure is not kept
    assert await asyncio.wait_for(recording, WAIT) is False
    assert list(await store.failures(record.run_id)) == []


async def _blocked_by(db: PostgresDatabase, pid: int) -> None:
    """Return once some backend waits for a lock ``pid`` holds (bounded by WAIT)."""
    async with asyncio.timeout(WAIT):
        while True:
            async with db.connection("test") as conn:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    pid,
                )
            if waiting:
                return
            await asyncio.sleep(0.01)


async def test_without_history_writes_leave_no_history_rows(db: PostgresDatabase) -> None:
    # Given the store without history
    store = PostgresRecordStoreWithoutHistory(db)
    assert isinstance(store, RecordsFailures)
    assert not isinstance(store, KeepsHistory)

    # When runs are written, alone and in a batch, and a failure recorded
    record = dummy_record()
    await store.store(insert(record))
    await store.store_many([update(record, status=2), insert(dummy_record(foreign_id="b"))])
    assert await store.record_failure(failure(await store.lookup(record.run_id)))

    # Then the history table stays empty, and the failure is kept
    async with db.connection("test") as conn:
        assert await conn.fetchval(f"SELECT count(*) FROM {db.tables.history}") == 0
    assert [f.version for f in await store.failures(record.run_id)] == [2]


async def test_the_history_option_picks_the_store(pg_url: str) -> None:
    schema = "failure_tests"
    async with open_database(pg_url, schema):
        pass  # migrated
    async with conveyor.connect(f"{pg_url}?schema={schema}") as on:
        assert isinstance(on.record_store, PostgresRecordStore)
        assert isinstance(on.record_store, KeepsHistory)
    async with conveyor.connect(f"{pg_url}?schema={schema}&history=false") as off:
        assert isinstance(off.record_store, PostgresRecordStoreWithoutHistory)
        assert not isinstance(off.record_store, KeepsHistory)
    async with conveyor.connect(f"{pg_url}?schema={schema}", history=False) as off:
        assert not isinstance(off.record_store, KeepsHistory)
    with pytest.raises(conveyor.AdapterError, match="history='maybe' is not a boolean"):
        async with conveyor.connect(f"{pg_url}?schema={schema}&history=maybe"):
            pass  # pragma: no cover


async def test_migrate_upgrades_a_version_1_schema(db: PostgresDatabase, pg_url: str) -> None:
    # Given a schema at version 1 (as conveyor 0001_initial.sql left it)
    schema = f"v1_{uuid.uuid4().hex[:8]}"
    tables = Tables(schema)
    first = migrations()[0]
    async with db.connection("test") as conn:
        await conn.execute(f"CREATE SCHEMA {tables.schema}")
        await conn.execute(tables.substitute(first.sql))
        await conn.execute(
            f"CREATE TABLE {tables.schema_migrations} (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(
            f"INSERT INTO {tables.schema_migrations} (version, name) VALUES (1, $1)", first.name
        )
    # Then this code refuses it until it is migrated
    with pytest.raises(conveyor.AdapterError, match="conveyor migrate"):
        async with conveyor.connect(f"{pg_url}?schema={schema}"):
            pass  # pragma: no cover

    # When it is migrated, then the later versions alone are applied, and failures and
    # history work
    assert await migrate(pg_url, schema=schema) == [2, 3, 4, 5, 6]
    async with conveyor.connect(f"{pg_url}?schema={schema}") as backend:
        store = backend.record_store
        assert isinstance(store, PostgresRecordStore)
        record = dummy_record()
        await store.store(insert(record))
        assert await store.record_failure(failure(record))
        assert [e.version for e in await store.history(record.run_id)] == [1]
