"""The MySQL/MariaDB timeout store: the conformance suite, pruning, and its query plans."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from _mysql_support import admin_sql, mysql_url, open_mysql

from conveyor.adapters.mysql import MySQLTimeoutStore, prune_timeouts
from conveyor.adapters.mysql._database import Database
from conveyor.adaptertest import TimeoutStoreSuite

__all__ = ["mysql_url"]

pytestmark = pytest.mark.mysql

PREFIX = "timeouts_"


async def _emptied(url: str, db: Database) -> None:
    """Empty the timeouts table and restart its IDs at 1 (a DELETE would not)."""
    await admin_sql(url, f"TRUNCATE TABLE {db.tables.timeouts}")


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[Database]:
    async with open_mysql(mysql_url, PREFIX) as database:
        await _emptied(mysql_url, database)
        yield database


class TestMySQLTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self, mysql_url: str) -> AsyncIterator[MySQLTimeoutStore]:
        async with open_mysql(mysql_url, PREFIX) as database:
            await _emptied(mysql_url, database)
            store = MySQLTimeoutStore(database)
            yield store
            await store.close()


_BASE = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def _age_completion(url: str, db: Database, ids: list[int], by: timedelta) -> None:
    """Move the completion of ``ids`` back by ``by`` (as if completed that long ago)."""
    marks = ", ".join(["%s"] * len(ids))
    await admin_sql(
        url,
        f"UPDATE {db.tables.timeouts} SET completed_at = completed_at - INTERVAL %s SECOND "
        f"WHERE id IN ({marks})",
        (int(by.total_seconds()), *ids),
    )


async def test_pruning_deletes_only_timeouts_completed_longer_ago_than_the_retention(
    mysql_url: str, db: Database
) -> None:
    # Given pending timeouts, timeouts completed just now, and timeouts completed two days
    # ago (the retention is one day by default)
    store = MySQLTimeoutStore(db)
    ids = [
        await store.create("wf", "fid", f"run-{i}", 1, _BASE, created_at=_BASE) for i in range(6)
    ]
    for timeout_id in ids[2:]:
        await store.complete(timeout_id)
    await _age_completion(mysql_url, db, ids[4:], timedelta(days=2))

    # When the table is pruned
    deleted = await prune_timeouts(db)

    # Then only the old completed timeouts are gone: a repeated create of a recently
    # completed one still finds it, and the pending ones still fire
    assert deleted == 2
    rows = await admin_sql(mysql_url, f"SELECT id FROM {db.tables.timeouts} ORDER BY id")
    assert [r[0] for r in rows] == ids[:4]
    assert await store.create("wf", "fid", "run-2", 1, _BASE, created_at=_BASE) == ids[2]
    assert [t.id for t in await store.list_valid("wf", 1, _BASE)] == ids[:2]
    assert await prune_timeouts(db) == 0


async def test_pruning_works_through_many_rows_in_chunks(mysql_url: str, db: Database) -> None:
    # Given 2,500 timeouts completed two days ago and one completed now
    old = _BASE.replace(tzinfo=None)
    values = ", ".join(["('wf', 'fid', %s, 1, %s, %s, 0, 0, %s)"] * 2500)
    args: list[object] = []
    for i in range(2500):
        args += [f"run-{i}", old, old, old]
    await admin_sql(
        mysql_url,
        f"INSERT INTO {db.tables.timeouts} (workflow_name, foreign_id, run_id, status, "
        f"expire_at, created_at, record_version, idx, completed_at) VALUES {values}",
        tuple(args),
    )
    store = MySQLTimeoutStore(db)
    recent = await store.create("wf", "fid", "recent", 1, _BASE, created_at=_BASE)
    await store.complete(recent)

    # When pruned with a retention of one hour
    deleted = await prune_timeouts(db, db.options.replace(timeout_retention=3600.0))

    # Then every old one is gone, in several statements of at most 1,000 rows
    assert deleted == 2500
    rows = await admin_sql(mysql_url, f"SELECT id FROM {db.tables.timeouts}")
    assert [r[0] for r in rows] == [recent]


@pytest.mark.parametrize(
    ("name", "where", "order"),
    [
        pytest.param(
            "list", "workflow_name = 'wf-3' AND completed_at IS NULL", "ORDER BY id", id="list"
        ),
        pytest.param(
            "list_valid",
            "workflow_name = 'wf-3' AND status = 3 AND completed_at IS NULL "
            "AND expire_at <= '2024-01-02 12:00'",
            "ORDER BY id",
            id="list_valid",
        ),
        pytest.param(
            "next_expiry",
            "workflow_name = 'wf-3' AND status = 3 AND completed_at IS NULL",
            "",
            id="next_expiry",
        ),
        pytest.param("prune", "completed_at < '2024-01-02 06:00'", "", id="prune"),
    ],
)
async def test_every_query_is_served_by_an_index(
    mysql_url: str, db: Database, name: str, where: str, order: str
) -> None:
    # Given enough timeouts of several workflows and statuses, some completed, that a
    # full scan would cost more than an index (the statistics refreshed)
    args: list[object] = []
    for i in range(2000):
        moment = (_BASE + timedelta(minutes=i)).replace(tzinfo=None)
        done = moment if i % 3 == 0 else None
        args += [f"wf-{i % 20}", f"run-{i}", i % 4, moment, moment, done]
    values = ", ".join(["(%s, 'fid', %s, %s, %s, %s, 0, 0, %s)"] * 2000)
    await admin_sql(
        mysql_url,
        f"INSERT INTO {db.tables.timeouts} (workflow_name, foreign_id, run_id, status, "
        f"expire_at, created_at, record_version, idx, completed_at) VALUES {values}",
        tuple(args),
    )
    await admin_sql(mysql_url, f"ANALYZE TABLE {db.tables.timeouts}")
    column = "MIN(expire_at)" if name == "next_expiry" else "id"

    # When the server plans the store's query
    (plan, *_) = await _explain(
        mysql_url, f"SELECT {column} FROM {db.tables.timeouts} WHERE {where} {order}"
    )

    # Then it reads through one of the table's indexes, never the whole table
    assert plan["type"] != "ALL", plan
    assert plan["key"] is not None or "optimized away" in str(plan["Extra"]), plan
    assert "filesort" not in str(plan["Extra"]) or name == "list_valid", plan


async def _explain(url: str, sql: str) -> list[dict[str, object]]:
    rows = await admin_sql(url, f"EXPLAIN {sql}")
    header = ("id", "select_type", "table", "type", "possible_keys", "key", "key_len", "ref")
    return [dict(zip((*header, "rows", "Extra"), r, strict=False)) for r in rows]
