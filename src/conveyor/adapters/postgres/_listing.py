"""``RunListing``: runs listed by a filter, by keyset (``ListsRuns``) on PostgreSQL.

Every shape is served by one of migration 3's indexes (``records_list_*``), which end in
``(created_at, run_id COLLATE "C")``: a page is read in index order after the cursor's key
(a row comparison the index seeks to) and never sorted. Foreign IDs and run IDs are
compared in the ``"C"`` collation (code point order, as the other stores), so the indexes
serve them whatever the database's collation, and a prefix is the range ``>= prefix AND <
successor``: ``%``, ``_`` and ``\\`` are plain text.

A run ID prefix (what resolves a short run ID) is a range of migration 5's
``records_list_run_id`` (``run_id COLLATE "C"``): the prefix's runs are read from it
first, in a ``MATERIALIZED`` CTE, and then sorted (the matches, not the table).
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from ..._capabilities import RunPage, RunQuery
from ..._record import Record
from .._listing import (
    Key,
    check_query,
    decode_cursor,
    encode_cursor,
    from_us,
    key_of,
    matches_nothing,
    page_limit,
    prefix_successor,
)
from ._database import Connection, Database
from ._record_sql import COLUMNS, record

__all__ = ["RunListing"]

_C = 'COLLATE "C"'


class RunListing:
    """``list_runs`` and ``count_runs`` of one installation's ``records`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records = db.tables.records

    @property
    def db(self) -> Database:
        """The database the statements run on."""
        return self._db

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None) -> RunPage:
        limit = page_limit(limit)
        after = None if cursor is None else decode_cursor(cursor, query.newest_first)
        sql, args = self.list_query(query, limit + 1, after)
        rows = await self._rows("listing runs", query, sql, args)
        records: list[Record] = [record(row).record for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(
            records, encode_cursor(key_of(records[-1]), query.newest_first) if more else None
        )

    async def count_runs(self, query: RunQuery, cap: int) -> int:
        sql, args = self.count_query(query, cap)
        rows = await self._rows("counting runs", query, sql, args)
        return int(rows[0][0]) if rows else 0

    async def _rows(
        self, what: str, query: RunQuery, sql: str, args: list[object]
    ) -> list[asyncpg.Record]:
        """The statement's rows; a foreign ID prefix's statement is planned for its values.

        The sessions run generic plans, and a generic plan cannot see how many runs a
        prefix holds: it guesses 0.5% of the table and walks the table in creation order,
        filtering (63 ms for a prefix of 400 runs among a million, 495 ms for one of 4;
        ``benchmarks/ui.py``). A custom plan reads the prefix's range when it is narrow and
        walks the order when it is broad (0.4 to 9 ms in every case measured).
        """
        if not query.foreign_id_prefix or query.foreign_id is not None:
            return await self._db.fetch(what, sql, *args)

        async def work(conn: Connection) -> list[asyncpg.Record]:
            async with conn.transaction(readonly=True):
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                return await conn.fetch(sql, *args)

        return await self._db.run(what, work, retry=True)

    def list_query(
        self, query: RunQuery, limit: int, after: Key | None = None
    ) -> tuple[str, list[object]]:
        """The statement ``list_runs`` runs for one page, with its arguments."""
        where, args = _where(query, after)
        direction = "DESC" if query.newest_first else "ASC"
        args.append(limit)
        select = f"SELECT {COLUMNS} FROM {self._records}" + (
            f" WHERE {' AND '.join(where)}" if where else ""
        )
        order = f" ORDER BY created_at {direction}, run_id {_C} {direction} LIMIT ${len(args)}"
        if query.run_id_prefix and not matches_nothing(query):
            # The prefix's runs first, from the run ID index, then sorted. As one SELECT,
            # a generic plan (which knows no prefix, so guesses that a range holds 0.5%
            # of the table) reads an index in list order and checks the range on each
            # entry until the page is full: every entry, for a prefix of one run.
            return f"WITH matching AS MATERIALIZED ({select}) SELECT * FROM matching{order}", args
        return select + order, args

    def count_query(self, query: RunQuery, cap: int) -> tuple[str, list[object]]:
        """The statement ``count_runs`` runs, with its arguments."""
        where, args = _where(query, None)
        args.append(max(0, cap))
        inner = (
            f"SELECT 1 FROM {self._records}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" LIMIT ${len(args)}"
        )
        return f"SELECT count(*) FROM ({inner}) AS matching", args


def _where(query: RunQuery, after: Key | None) -> tuple[list[str], list[object]]:
    check_query(query)
    where: list[str] = []
    args: list[object] = []

    def arg(value: object, kind: str) -> str:
        args.append(value)
        return f"${len(args)}::{kind}"

    if query.workflow_name:
        where.append(f"workflow_name = {arg(query.workflow_name, 'text')}")
    if matches_nothing(query):
        where.append("false")
    elif query.run_id_prefix:
        where += _starts_with("run_id", query.run_id_prefix, arg)
    if query.foreign_id is not None:
        where.append(f"foreign_id {_C} = {arg(query.foreign_id, 'text')}")
    if query.foreign_id_prefix:
        where += _starts_with("foreign_id", query.foreign_id_prefix, arg)
    for column, kind, values in (
        ("status", "bigint", [int(s) for s in query.statuses]),
        ("run_state", "smallint", [int(s) for s in query.run_states]),
    ):
        if len(values) == 1:
            where.append(f"{column} = {arg(values[0], kind)}")
        elif values:
            where.append(f"{column} = ANY({arg(values, kind + '[]')})")
    if query.created_after is not None:
        where.append(f"created_at >= {arg(query.created_after, 'timestamptz')}")
    if query.created_before is not None:
        where.append(f"created_at < {arg(query.created_before, 'timestamptz')}")
    if after is not None:
        when = arg(from_us(after.created_at_us), "timestamptz")
        run_id = arg(after.run_id, "text")
        op = "<" if query.newest_first else ">"
        where.append(f"(created_at, run_id {_C}) {op} ({when}, {run_id})")
    return where, args


def _starts_with(column: str, prefix: str, arg: Callable[[object, str], str]) -> list[str]:
    """``column`` starts with ``prefix``: the range of it up to the prefix's successor."""
    found = [f"{column} {_C} >= {arg(prefix, 'text')}"]
    successor = prefix_successor(prefix)
    if successor is not None:
        found.append(f"{column} {_C} < {arg(successor, 'text')}")
    return found
