"""Every run list shape the web UI and the CLI use is served by an index on PostgreSQL
(``EXPLAIN`` of the generic plan, with rows loaded and analysed, in a session with
``enable_seqscan`` off like the backend's): an index scan of ``records`` and, but for a
prefix (a range of the foreign ID or run ID index, then its matches sorted), no sort
beyond the ties of one instant."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from _listing_shapes import AFTER, PREFIX_SHAPES, RESOLVE_LIMIT, SHAPES, rows
from _pg_support import open_database, pg_url

from conveyor.abc import RunQuery
from conveyor.adapters.postgres import PostgresDatabase, PostgresRecordStore
from conveyor.adaptertest import insert

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

_FULL_SORT = re.compile(r"^\s*(->\s*)?Sort\s+\(", re.MULTILINE)
BULK = 50_000
"""Runs loaded besides ``rows()``, over the same hours."""


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresRecordStore]:
    async with open_database(pg_url, "listing_plans") as db:
        store = PostgresRecordStore(db)
        async with db.connection("test") as conn:
            loaded = await conn.fetchval(f"SELECT count(*) FROM {db.tables.records}")
        if not loaded:  # once per test run: the schema is kept between cases
            await _load(store, db)
        yield store
        await store.close()


async def _load(store: PostgresRecordStore, db: PostgresDatabase) -> None:
    await store.store_many([insert(r) for r in rows()])
    async with db.connection("test") as conn:
        # and many more, as a run list the UI pages through has (SQL, for speed)
        await conn.execute(
            f"INSERT INTO {db.tables.records} (run_id, workflow_name, foreign_id, "
            "run_state, status, object, created_at, updated_at, version, "
            "run_state_reason, status_description, trace_origin) "
            "SELECT 'bulk-' || i, CASE WHEN i % 3 = 0 THEN 'other' ELSE 'wf' END, "
            "'bulk-' || i, 1 + i % 6, 1 + i % 4, '\\x7b7d', "
            "timestamptz '2024-01-01' + i * interval '1 second', now(), 1, '', '', '' "
            f"FROM generate_series(1, {BULK}) AS i"
        )
        await conn.execute(f"ANALYZE {db.tables.records}")


async def _plan(
    db: PostgresDatabase, sql: str, args: list[object], mode: str = "force_generic_plan"
) -> str:
    # ``EXPLAIN <sql>`` with the arguments bound plans for their values (a custom plan);
    # the backend's prepared statements run generic plans, which know none. PostgreSQL 15
    # has no EXPLAIN (GENERIC_PLAN): prepare the statement (each $n takes its cast's type)
    # and explain executing it, with the arguments as untyped literals.
    async with db.connection("test") as conn:
        await conn.execute(f"PREPARE listing_plan AS {sql}")
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_seqscan = off")  # only without an index
                await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                literals = ", ".join(_literal(a) for a in args)
                rows = await conn.fetch(f"EXPLAIN EXECUTE listing_plan({literals})")
        finally:
            await conn.execute("DEALLOCATE listing_plan")
        return "\n".join(r[0] for r in rows)


def _literal(value: object) -> str:
    """``value`` as a quoted literal of unknown type (the parameter's type applies)."""
    if isinstance(value, list):
        text = "{" + ",".join(str(v) for v in value) + "}"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + "'"


@pytest.mark.parametrize(
    ("workflow", "name", "paged"),
    [
        pytest.param(w, n, p, id=f"{w or 'all'}-{n}-{'after-cursor' if p else 'first-page'}")
        for w, n, p in itertools.product(["", "wf"], SHAPES, [False, True])
    ],
)
async def test_every_list_shape_is_served_by_an_index(
    store: PostgresRecordStore, workflow: str, name: str, paged: bool
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, args = store.listing.list_query(query, 51, AFTER if paged else None)

    plan = await _plan(store.listing.db, sql, args)

    assert "Seq Scan" not in plan, plan
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    if name not in PREFIX_SHAPES:
        # read in order; at most the ties of one created_at are sorted (the older
        # (created_at, seq) indexes of list() also serve a bounded time range so)
        assert not _FULL_SORT.search(plan), plan
        assert "records_list_" in plan or "Presorted Key: created_at" in plan, plan
    if name == "run-id-prefix":
        assert _RUN_ID_RANGE.search(plan), plan


_RUN_ID_RANGE = re.compile(
    r"Index Scan (?:using|on) records_list_run_id\s.*\n"
    r"\s*Index Cond: \(\(\(run_id\)::text >= \$\d+\) AND \(\(run_id\)::text < \$\d+\)\)"
)
"""Migration 5's index of run IDs (in "C") read as the prefix's range (a bitmap or not)."""


@pytest.mark.parametrize(
    ("workflow", "paged"),
    [
        pytest.param(w, p, id=f"{w or 'all'}-{'after-cursor' if p else 'first-page'}")
        for w, p in itertools.product(["", "wf"], [False, True])
    ],
)
async def test_a_run_id_prefix_is_resolved_from_a_range_of_the_run_id_index(
    store: PostgresRecordStore, workflow: str, paged: bool
) -> None:
    # Given the query that resolves a short run ID (with or without a workflow name;
    # as one SELECT its generic plan would read an index in list order, checking the
    # range on every entry)
    query = dataclasses.replace(SHAPES["run-id-prefix"], workflow_name=workflow)
    sql, args = store.listing.list_query(query, RESOLVE_LIMIT + 1, AFTER if paged else None)

    # When it is planned
    plan = await _plan(store.listing.db, sql, args)

    # Then the prefix's runs come from the range of the run ID index, and only they are
    # sorted
    assert "Seq Scan" not in plan, plan
    assert _RUN_ID_RANGE.search(plan), plan
    scans = re.findall(r"Index (?:Only )?Scan(?: Backward)? (?:using|on) (\w+)", plan)
    assert scans, plan
    assert set(scans) <= {"records_list_run_id", "records_by_workflow"}, plan


async def test_the_migrated_schema_has_the_run_id_index(store: PostgresRecordStore) -> None:
    tables = store.listing.db.tables
    index = f'{tables.schema}."{tables.prefix}records_list_run_id"'
    async with store.listing.db.connection("test") as conn:
        definition = await conn.fetchval("SELECT pg_get_indexdef(to_regclass($1))", index)
    assert definition is not None, index
    assert definition.endswith('(run_id COLLATE "C")'), definition


@pytest.mark.parametrize(
    ("workflow", "name"),
    [pytest.param(w, n, id=f"{w or 'all'}-{n}") for w, n in itertools.product(["", "wf"], SHAPES)],
)
async def test_every_count_shape_is_served_by_an_index(
    store: PostgresRecordStore, workflow: str, name: str
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, args = store.listing.count_query(query, 10_000)

    plan = await _plan(store.listing.db, sql, args)

    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


@pytest.mark.parametrize("workflow", ["", "wf"])
async def test_a_foreign_id_prefix_is_planned_for_its_value(
    store: PostgresRecordStore, workflow: str
) -> None:
    # Given a narrow foreign ID prefix (a few of the 50,400 runs: a generic plan guesses
    # 0.5% of the table and walks it in creation order, filtering every entry)
    query = RunQuery(workflow_name=workflow, foreign_id_prefix="order-1234")
    sql, args = store.listing.list_query(query, 51)

    # When the store runs its statement, the session plans it for its values
    rows = await store.listing._rows("test", query, "SHOW plan_cache_mode", [])
    assert rows[0][0] == "force_custom_plan"
    others = await store.listing._rows(
        "test", RunQuery(workflow_name=workflow), "SHOW plan_cache_mode", []
    )
    assert others[0][0] == "force_generic_plan"  # every other shape keeps its generic plan

    # Then, so planned, it reads the prefix's range of a foreign ID index
    plan = await _plan(store.listing.db, sql, args, mode="force_custom_plan")
    assert re.search(r"Index (?:Only )?Scan using \w*records_list_\w*foreign_id", plan), plan
    assert "records_by_created" not in plan, plan
