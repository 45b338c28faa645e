"""Every run list shape the web UI and the CLI use is served by an index on SQLite
(``EXPLAIN QUERY PLAN`` with rows loaded): no table scan, and no sort of the page (but
the matches of a prefix, read as a range of its column's index)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3

import pytest
from _listing_shapes import AFTER, PREFIX_SHAPES, RESOLVE_LIMIT, SHAPES, rows

from conveyor.adapters.sqlite import SQLiteRecordStore
from conveyor.adapters.sqlite._listing import count_sql, list_sql
from conveyor.adapters.sqlite._record_store import _SELECT
from conveyor.adaptertest import insert


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    path = tmp_path_factory.mktemp("plans") / "plans.db"

    async def load() -> None:
        store = await SQLiteRecordStore.open(str(path))
        try:
            await store.store_many([insert(r) for r in rows()])
        finally:
            await store.close()

    asyncio.run(load())
    return sqlite3.connect(path)


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


@pytest.mark.parametrize(
    ("workflow", "name", "paged"),
    [
        pytest.param(w, n, p, id=f"{w or 'all'}-{n}-{'after-cursor' if p else 'first-page'}")
        for w, n, p in itertools.product(["", "wf"], SHAPES, [False, True])
    ],
)
def test_every_list_shape_is_served_by_an_index(
    loaded: sqlite3.Connection, workflow: str, name: str, paged: bool
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, params = list_sql(_SELECT, query, AFTER if paged else None, 51)

    steps = _plan(loaded, sql, params)

    table = [s for s in steps if "records" in s]
    assert table, steps
    if name == "run-id-prefix":
        assert all(_RUN_ID_RANGE in s for s in table), steps
    else:
        assert all("USING INDEX records_list_" in s for s in table), steps
    if name not in PREFIX_SHAPES:
        assert not [s for s in steps if "TEMP B-TREE" in s], steps
    elif any("TEMP B-TREE" in s for s in steps):
        # the index's range of the prefix's foreign IDs or run IDs, then those matches sorted
        assert all(f"{PREFIX_SHAPES[name]}>?" in s for s in table), steps


_RUN_ID_RANGE = "USING INDEX sqlite_autoindex_records_1 (run_id>? AND run_id<?)"
"""The run ID column's ``UNIQUE`` index (``BINARY``, code point order) read as a range."""


@pytest.mark.parametrize(
    ("workflow", "paged"),
    [
        pytest.param(w, p, id=f"{w or 'all'}-{'after-cursor' if p else 'first-page'}")
        for w, p in itertools.product(["", "wf"], [False, True])
    ],
)
def test_a_run_id_prefix_is_resolved_from_a_range_of_the_run_id_index(
    loaded: sqlite3.Connection, workflow: str, paged: bool
) -> None:
    # Given the query that resolves a short run ID (with or without a workflow name,
    # which the workflow's own index would otherwise serve by reading all its runs)
    query = dataclasses.replace(SHAPES["run-id-prefix"], workflow_name=workflow)
    sql, params = list_sql(_SELECT, query, AFTER if paged else None, RESOLVE_LIMIT + 1)

    # When it is planned
    steps = _plan(loaded, sql, params)

    # Then the only read of records is the prefix's range of the run ID index
    assert [s for s in steps if "records" in s] == [f"SEARCH records {_RUN_ID_RANGE}"], steps


@pytest.mark.parametrize(
    ("workflow", "name"),
    [pytest.param(w, n, id=f"{w or 'all'}-{n}") for w, n in itertools.product(["", "wf"], SHAPES)],
)
def test_every_count_shape_is_served_by_an_index(
    loaded: sqlite3.Connection, workflow: str, name: str
) -> None:
    query = dataclasses.replace(SHAPES[name], workflow_name=workflow)
    sql, params = count_sql(query, 10_000)

    steps = _plan(loaded, sql, params)

    table = [s for s in steps if "records" in s]
    assert table, steps
    assert all("INDEX" in s for s in table), steps


def test_an_upgraded_file_has_the_list_indexes(loaded: sqlite3.Connection) -> None:
    names = {
        row[0]
        for row in loaded.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        if row[0].startswith("records_list_")
    }
    assert names == {
        "records_list_all",
        "records_list_by_workflow",
        "records_list_by_status",
        "records_list_by_run_state",
        "records_list_by_foreign_id",
        "records_list_any_foreign_id",
    }
