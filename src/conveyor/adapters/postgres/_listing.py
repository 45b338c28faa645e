"""``RunListing``: runs listed by a filter, by keyset (``ListsRuns``) on PostgreSQL.

Every shape is served by one of migration 3's indexes (``records_list_*``), which end in
``(created_at, run_id COLLATE "C")``: a page is read in index order after the cursor's key
(a row comparison the index seeks to) and never sorted. Foreign IDs and run IDs are
compared in the ``"C"`` collation (code point order, as the other stores), so the indexes
serve them whatever the database's collation, and a prefix is the range ``>= prefix AND <
successor``: ``%``, ``_`` and ``\\`` are plain text.
"""

from __future__ import annotations

from ..._capabilities import RunPage, RunQuery
from ..._record import Record
from .._listing import (
    Key,
    check_query,
    decode_cursor,
    encode_cursor,
    from_us,
    key_of,
    page_limit,
    prefix_successor,
)
from ._database import Database
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
        rows = await self._db.fetch("listing runs", sql, *args)
        records: list[Record] = [record(row).record for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(
            records, encode_cursor(key_of(records[-1]), query.newest_first) if more else None
        )

    async def count_runs(self, query: RunQuery, cap: int) -> int:
        sql, args = self.count_query(query, cap)
        row = await self._db.fetchrow("counting runs", sql, *args)
        return 0 if row is None else int(row[0])

    def list_query(
        self, query: RunQuery, limit: int, after: Key | None = None
    ) -> tuple[str, list[object]]:
        """The statement ``list_runs`` runs for one page, with its arguments."""
        where, args = _where(query, after)
        direction = "DESC" if query.newest_first else "ASC"
        args.append(limit)
        sql = (
            f"SELECT {COLUMNS} FROM {self._records}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at {direction}, run_id {_C} {direction} LIMIT ${len(args)}"
        )
        return sql, args

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
    if query.foreign_id is not None:
        where.append(f"foreign_id {_C} = {arg(query.foreign_id, 'text')}")
    if query.foreign_id_prefix:
        where.append(f"foreign_id {_C} >= {arg(query.foreign_id_prefix, 'text')}")
        successor = prefix_successor(query.foreign_id_prefix)
        if successor is not None:
            where.append(f"foreign_id {_C} < {arg(successor, 'text')}")
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
