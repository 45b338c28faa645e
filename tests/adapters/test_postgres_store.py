"""The PostgreSQL record store beyond the suite (batches that need the per-write path,
lists served by indexes) and the schema's migrations."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from _pg_support import open_database, pg_url

import conveyor
from conveyor import AdapterError, RunState, WorkflowInProgress
from conveyor.abc import Order, RecordFilter
from conveyor.adapters.postgres import (
    LATEST_VERSION,
    PostgresDatabase,
    PostgresRecordStore,
    migrate,
    open_backend,
)
from conveyor.adaptertest import dummy_record, insert, update

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    async with open_database(pg_url, "store_tests", fresh=True) as database:
        yield database


# ---------------------------------------------------------------- batches


async def test_a_batch_may_move_one_run_twice_in_order(db: PostgresDatabase) -> None:
    store = PostgresRecordStore(db)
    first = insert(dummy_record(foreign_id="twice"))
    second = update(first.record, status=2)
    third = update(second.record, status=3, run_state=RunState.COMPLETED)

    outcomes = await store.store_many([first, second, third])

    assert list(outcomes) == [None, None, None]
    got = await store.lookup(first.record.run_id)
    assert (got.version, got.status, got.run_state) == (3, 3, RunState.COMPLETED)
    outbox = await store.list_outbox_events(first.record.workflow_name, 10)
    assert [e.id for e in outbox] == [first.outbox.id, second.outbox.id, third.outbox.id]


async def test_an_update_that_would_make_a_second_active_run_fails_alone(
    db: PostgresDatabase,
) -> None:
    store = PostgresRecordStore(db)
    done = dummy_record(foreign_id="busy")
    await store.store(insert(done))
    finished = update(done, run_state=RunState.COMPLETED)
    await store.store(finished)
    active = dummy_record(foreign_id="busy")
    await store.store(insert(active))
    other = dummy_record(foreign_id="bystander")
    await store.store(insert(other))

    # Reviving the finished run while another is active, next to an unrelated write.
    revive = update(finished.record, run_state=RunState.RUNNING)
    moved = update(other, status=2)
    outcomes = await store.store_many([revive, moved])

    assert isinstance(outcomes[0], WorkflowInProgress)
    assert outcomes[1] is None
    assert (await store.lookup(done.run_id)).run_state is RunState.COMPLETED
    assert (await store.lookup(other.run_id)).status == 2


async def test_concurrent_writes_of_one_version_apply_exactly_once(db: PostgresDatabase) -> None:
    store = PostgresRecordStore(db)
    record = dummy_record(foreign_id="contended")
    await store.store(insert(record))

    outcomes = await asyncio.gather(
        *(store.store_many([update(record, status=2)]) for _ in range(8))
    )

    applied = [o for (o,) in outcomes if o is None]
    assert len(applied) == 1
    assert (await store.lookup(record.run_id)).version == 2


async def test_concurrent_lookups_are_merged_into_one_query(db: PostgresDatabase) -> None:
    store = PostgresRecordStore(db)
    records = [dummy_record(foreign_id=f"l-{i}") for i in range(20)]
    await store.store_many([insert(r) for r in records])

    got = await asyncio.gather(*(store.lookup(r.run_id) for r in records))

    assert [g.run_id for g in got] == [r.run_id for r in records]
    with pytest.raises(conveyor.RecordNotFound):
        await asyncio.gather(store.lookup(records[0].run_id), store.lookup("nope"))


# ---------------------------------------------------------------- list uses indexes


FILTERS = {
    "none": None,
    "foreign ids": RecordFilter(foreign_ids=("a", "b")),
    "statuses": RecordFilter(statuses=(1, 2)),
    "run states": RecordFilter(run_states=(RunState.RUNNING,)),
    "created range": RecordFilter(
        created_after=datetime(2024, 1, 1, tzinfo=UTC),
        created_before=datetime(2025, 1, 1, tzinfo=UTC),
    ),
    "everything": RecordFilter(
        foreign_ids=("a",),
        statuses=(1,),
        run_states=(RunState.RUNNING, RunState.PAUSED),
        created_after=datetime(2024, 1, 1, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize(
    ("workflow", "order", "name"),
    [
        pytest.param(w, o, n, id=f"{w or 'all'}-{o.value}-{n}")
        for w, o, n in itertools.product(["", "wf"], Order, FILTERS)
    ],
)
async def test_every_list_filter_is_served_by_an_index(
    db: PostgresDatabase, workflow: str, order: Order, name: str
) -> None:
    store = PostgresRecordStore(db)
    sql, args = store.list_query(workflow, 100, 25, order, FILTERS[name])

    async with db.connection("test") as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # only possible without an index
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))

    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


# ---------------------------------------------------------------- schema


async def test_migrate_is_idempotent_and_safe_to_run_concurrently(pg_url: str) -> None:
    schema = f"migrate_{uuid.uuid4().hex[:8]}"

    results = await asyncio.gather(*(migrate(pg_url, schema=schema) for _ in range(4)))

    assert sorted(results) == [[], [], [], list(range(1, LATEST_VERSION + 1))]
    assert await migrate(pg_url, schema=schema) == []
    await conveyor.migrate(f"{pg_url}?schema={schema}")  # the CLI's entry point
    async with open_backend(pg_url, schema=schema) as backend:
        assert isinstance(backend.record_store, PostgresRecordStore)


async def test_opening_an_unmigrated_schema_says_how_to_migrate(pg_url: str) -> None:
    with pytest.raises(AdapterError, match="conveyor migrate"):
        async with open_backend(pg_url, schema=f"missing_{uuid.uuid4().hex[:8]}"):
            pass  # pragma: no cover


async def test_a_schema_newer_than_the_code_is_refused_by_open_and_migrate(pg_url: str) -> None:
    # Given a schema a newer conveyor migrated (one version past this code's)
    schema = f"newer_{uuid.uuid4().hex[:8]}"
    await migrate(pg_url, schema=schema)
    async with open_database(pg_url, schema) as db, db.connection("test") as conn:
        await conn.execute(
            f"INSERT INTO {db.tables.schema_migrations} (version, name) VALUES ($1, 'future')",
            LATEST_VERSION + 1,
        )
    newer = f"at version {LATEST_VERSION + 1}, newer than this conveyor knows ({LATEST_VERSION})"
    # When this code opens it (with or without migrate=True) or migrates it, then it refuses
    for options in ({}, {"migrate": True}):
        with pytest.raises(AdapterError, match="upgrade conveyor") as raised:
            async with open_backend(pg_url, schema=schema, **options):
                pass  # pragma: no cover
        assert newer in str(raised.value)
    with pytest.raises(AdapterError, match="upgrade conveyor") as raised:
        await migrate(pg_url, schema=schema)
    assert newer in str(raised.value)


async def test_table_prefixes_keep_two_installations_apart_in_one_schema(pg_url: str) -> None:
    schema = f"prefixed_{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}?schema={schema}&migrate=true"
    async with (
        conveyor.connect(url, table_prefix="blue_") as blue,
        conveyor.connect(url, table_prefix="green_") as green,
    ):
        record = dummy_record()
        await blue.record_store.store(insert(record))
        assert (await blue.record_store.lookup(record.run_id)).run_id == record.run_id
        with pytest.raises(conveyor.RecordNotFound):
            await green.record_store.lookup(record.run_id)


async def test_a_cancelled_lookup_does_not_strand_the_others_of_its_batch(
    db: PostgresDatabase,
) -> None:
    store = PostgresRecordStore(db)
    records = [dummy_record(foreign_id=f"c-{i}") for i in range(3)]
    await store.store_many([insert(r) for r in records])

    # The first lookup of the turn runs the shared query; it is cancelled mid-way.
    first = asyncio.create_task(store.lookup(records[0].run_id))
    others = [asyncio.create_task(store.lookup(r.run_id)) for r in records[1:]]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first.cancel()

    got = await asyncio.wait_for(asyncio.gather(*others), 5.0)
    assert [g.run_id for g in got] == [r.run_id for r in records[1:]]
    assert first.cancelled() or first.done()


async def test_concurrent_single_writes_share_statements_and_keep_their_own_outcomes(
    db: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresRecordStore(db)
    statements: list[str] = []
    run = db.run

    async def counting(what: str, work: Any, **kwargs: Any) -> Any:
        statements.append(what)
        return await run(what, work, **kwargs)

    monkeypatch.setattr(db, "run", counting)
    records = [dummy_record(foreign_id=f"t-{i}") for i in range(40)]
    clash = dummy_record(foreign_id="t-7")  # a second active run for one foreign ID

    outcomes = await asyncio.gather(
        *(store.store(insert(r)) for r in [*records, clash]), return_exceptions=True
    )

    assert outcomes[:40] == [None] * 40
    assert isinstance(outcomes[40], WorkflowInProgress)
    # The first write goes alone; the others queue behind it and go together.
    assert statements.count("storing records") <= 3
    found = await store.list(records[0].workflow_name, limit=100)
    assert {r.run_id for r in found} == {r.run_id for r in records}
