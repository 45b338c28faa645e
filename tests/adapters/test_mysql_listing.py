"""Every run list shape the web UI and the CLI use is served by an index on MySQL/MariaDB
(``EXPLAIN``, with rows loaded and the table analysed): no full table scan, the
``records_list_*`` index of the shape read in order (no filesort), but for a prefix (a
range of the foreign ID or run ID index, then its matches sorted). ``count_runs`` and
the older ``list`` are served by indexes too.

The optimizer plans each statement for its values (the driver sends them in its text),
and prefers a table scan over an index on a small table: ``rows()`` and 50,000 more runs
are loaded (400 alone leave some shapes to a scan), as a run list the UI pages through
has."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from _listing_shapes import AFTER, PREFIX_SHAPES, RESOLVE_LIMIT, SHAPES, rows
from _mysql_support import mysql_url, open_mysql

from conveyor import RunState
from conveyor.abc import Order, RecordFilter
from conveyor.adapters.mysql import MySQLDatabase, MySQLRecordStore
from conveyor.adaptertest import insert

__all__ = ["mysql_url"]

BULK = 50_000
"""Runs loaded besides ``rows()``, over the same hours."""
PREFIX = "listing_plans_"


@pytest.fixture
async def store(mysql_url: str) -> AsyncIterator[MySQLRecordStore]:
    async with open_mysql(mysql_url, PREFIX) as db:
        store = MySQLRecordStore(db)
        (loaded,), *_ = await db.fetch("test", f"SELECT COUNT(*) FROM {db.tables.records}")
        if loaded != BULK + len(rows()):  # once per test run: the tables are kept between cases
            await db.execute("emptying", f"DELETE FROM {db.tables.records}")
            await _load(store, db)
        yield store
        await store.close()


async def _load(store: MySQLRecordStore, db: MySQLDatabase) -> None:
    await store.store_many([insert(r) for r in rows()])
    # and many more (SQL, for speed): numbers 0..99,999 from a cross join of digits
    digits = " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10))
    numbers = " CROSS JOIN ".join(f"({digits}) AS d{i}" for i in range(5))
    n = " + ".join(f"d{i}.d * {10**i}" for i in range(5))
    await db.execute(
        "loading runs",
        f"INSERT INTO {db.tables.records} (run_id, workflow_name, foreign_id, run_state, "
        "status, object, created_at, updated_at, version, run_state_reason, "
        "status_description, trace_origin, reached) "
        "SELECT CONCAT('bulk-', i), IF(MOD(i, 3) = 0, 'other', 'wf'), CONCAT('bulk-', i), "
        "1 + MOD(i, 6), 1 + MOD(i, 4), '{}', "
        "TIMESTAMP '2024-01-01 00:00:00' + INTERVAL i SECOND, UTC_TIMESTAMP(6), 1, '', '', "
        f"'', '' FROM (SELECT {n} AS i FROM {numbers}) AS numbers WHERE i BETWEEN 1 AND {BULK}",
    )
    await db.fetch("analysing", f"ANALYZE TABLE {db.tables.records}")


async def _plan(db: MySQLDatabase, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    """The rows of ``EXPLAIN`` (by column name) that read the ``records`` table."""

    async def explain(conn: Any) -> list[dict[str, Any]]:
        async with conn.cursor() as cur:
            await cur.execute(f"EXPLAIN {sql}", args)
            names = [d[0].lower() for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    steps = await db.run("explaining", explain)
    table = db.tables.prefix + "records"
    return [s for s in steps if s["table"] == table]


def _shown(steps: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"type={s['type']} key={s['key']} rows={s['rows']} extra={s['extra']}" for s in steps
    )


def _index(db: MySQLDatabase, name: str) -> str:
    return db.tables.index(name)


def _assert_indexed(steps: list[dict[str, Any]]) -> None:
    assert steps, "the statement does not read records"
    for step in steps:
        assert step["type"] != "ALL", _shown(steps)
        assert step["key"], _shown(steps)


@pytest.mark.parametrize(
    ("workflow", "name", "paged"),
    [
        pytest.param(w, n, p, id=f"{w or 'all'}-{n}-{'after-cursor' if p else 'first-page'}")
        for w, n, p in itertools.product(["", "wf"], SHAPES, [False, True])
    ],
)
async def test_every_list_shape_is_served_by_an_index(
    store: MySQLRecordStore, workflow: str, name: str, paged: bool
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, args = store.listing.list_query(query, 51, AFTER if paged else None)

    steps = await _plan(store.listing.db, sql, args)

    _assert_indexed(steps)
    if name not in PREFIX_SHAPES:
        # read in the index's order: no sort
        assert all("filesort" not in (s["extra"] or "") for s in steps), _shown(steps)
        assert all(s["key"].startswith(_index(store.listing.db, "records_list_")) for s in steps)
    else:
        # a range of the prefix's column (then its matches sorted), or the list order
        column = PREFIX_SHAPES[name]
        for step in steps:
            key = step["key"].removeprefix(store.listing.db.tables.prefix)
            if "filesort" in (step["extra"] or ""):
                assert step["type"] == "range", _shown(steps)
                assert key in _PREFIX_INDEXES[column], _shown(steps)


_PREFIX_INDEXES = {
    "foreign_id": {"records_list_by_foreign_id", "records_list_any_foreign_id"},
    "run_id": {"records_run_id"},
}
"""The indexes whose range holds a prefix's matches, by column."""


@pytest.mark.parametrize(
    ("workflow", "paged"),
    [
        pytest.param(w, p, id=f"{w or 'all'}-{'after-cursor' if p else 'first-page'}")
        for w, p in itertools.product(["", "wf"], [False, True])
    ],
)
async def test_a_run_id_prefix_is_resolved_from_a_range_of_the_run_id_index(
    store: MySQLRecordStore, workflow: str, paged: bool
) -> None:
    # Given the query that resolves a short run ID (with or without a workflow name,
    # which the workflow's own index would otherwise serve by reading all its runs)
    query = dataclasses.replace(SHAPES["run-id-prefix"], workflow_name=workflow)
    sql, args = store.listing.list_query(query, RESOLVE_LIMIT + 1, AFTER if paged else None)

    # When it is planned
    steps = await _plan(store.listing.db, sql, args)

    # Then the only read of records is the prefix's range of the run ID index
    assert [(s["type"], s["key"]) for s in steps] == [
        ("range", _index(store.listing.db, "records_run_id"))
    ], _shown(steps)


@pytest.mark.parametrize(
    ("workflow", "name"),
    [pytest.param(w, n, id=f"{w or 'all'}-{n}") for w, n in itertools.product(["", "wf"], SHAPES)],
)
async def test_every_count_shape_is_served_by_an_index(
    store: MySQLRecordStore, workflow: str, name: str
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, args = store.listing.count_query(query, 10_000)

    _assert_indexed(await _plan(store.listing.db, sql, args))


FILTERS = {
    "none": None,
    "foreign ids": RecordFilter(foreign_ids=("order-7", "order-8")),
    "statuses": RecordFilter(statuses=(1, 2)),
    "run states": RecordFilter(run_states=(RunState.RUNNING,)),
    "created range": RecordFilter(
        created_after=datetime(2024, 1, 1, 1, tzinfo=UTC),
        created_before=datetime(2024, 1, 1, 2, tzinfo=UTC),
    ),
    "everything": RecordFilter(
        foreign_ids=("order-7",),
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
    store: MySQLRecordStore, workflow: str, order: Order, name: str
) -> None:
    sql, args = store.list_query(workflow, 100, 25, order, FILTERS[name])

    _assert_indexed(await _plan(store.listing.db, sql, args))


async def test_latest_reads_the_foreign_id_s_runs_from_an_index(store: MySQLRecordStore) -> None:
    db = store.listing.db
    sql = (
        f"SELECT run_id FROM {db.tables.records} WHERE workflow_name = %s AND foreign_id = %s "
        "ORDER BY created_at DESC, seq DESC LIMIT 1"
    )
    steps = await _plan(db, sql, ["wf", "order-7"])

    assert [(s["type"], s["key"]) for s in steps] == [
        ("ref", _index(db, "records_list_by_foreign_id"))
    ], _shown(steps)
