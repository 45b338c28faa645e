"""Every run list shape the web UI and the CLI use is served by an index on PostgreSQL
(``EXPLAIN`` of the generic plan, with rows loaded and analysed, in a session with
``enable_seqscan`` off like the backend's): an index scan of ``records`` and, but for a
foreign ID prefix (a range of the foreign ID index, then its matches sorted), no sort
beyond the ties of one instant."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import AsyncIterator

import pytest
from _listing_shapes import AFTER, PREFIX_SHAPES, SHAPES, rows
from _pg_support import open_database, pg_url

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


async def _plan(db: PostgresDatabase, sql: str, args: list[object]) -> str:
    async with db.connection("test") as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # only possible without an index
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))


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
