"""``RunListing``: runs listed by a filter, by keyset (``ListsRuns``) on MySQL/MariaDB.

Every shape is served by one of the ``records_list_*`` indexes of migration 1, which end
in ``(created_at, run_id)``: a page is read in index order after the cursor's key and
not sorted. The key is written ``created_at <= ? AND (created_at < ? OR run_id < ?)``
(for newest first; ``>=``/``>`` for oldest first): the first conjunct is a range the
index seeks to, which a row comparison ``(created_at, run_id) < (?, ?)`` is not for every
optimizer. Names and IDs are ``VARBINARY`` (UTF-8 bytes, code point order, as the other
stores), so a prefix is the range ``>= prefix AND < successor``: ``%``, ``_`` and ``\\``
are plain text, and no collation pads or folds anything.

A run ID prefix (what resolves a short run ID) is a range of the ``records_run_id``
unique index, named with ``FORCE INDEX``: the prefix's runs are read from it and then
sorted (the matches, not the table). Otherwise the optimizer may walk the workflow's
index in list order and check the prefix on each entry, which for a prefix of one run
is every entry. A foreign ID prefix is left to the optimizer, which plans each
statement for its values (asyncmy sends them in the text, no generic plan): a narrow
prefix reads its range of ``records_list_by_foreign_id`` or
``records_list_any_foreign_id`` and sorts those matches, a broad one walks the list
order.
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
    matches_nothing,
    page_limit,
    prefix_successor,
)
from ._database import Database
from ._rows import COLUMNS, record, to_db

__all__ = ["RunListing"]


class RunListing:
    """``list_runs`` and ``count_runs`` of one installation's ``records`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records = db.tables.records
        self._by_run_id = f"{self._records} FORCE INDEX (`{db.tables.index('records_run_id')}`)"

    @property
    def db(self) -> Database:
        """The database the statements run on."""
        return self._db

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None) -> RunPage:
        limit = page_limit(limit)
        after = None if cursor is None else decode_cursor(cursor, query.newest_first)
        sql, args = self.list_query(query, limit + 1, after)
        rows = await self._db.fetch("listing runs", sql, args)
        records: list[Record] = [record(row).record for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(
            records, encode_cursor(key_of(records[-1]), query.newest_first) if more else None
        )

    async def count_runs(self, query: RunQuery, cap: int) -> int:
        sql, args = self.count_query(query, cap)
        rows = await self._db.fetch("counting runs", sql, args)
        return int(rows[0][0]) if rows else 0

    def _from(self, query: RunQuery) -> str:
        if query.run_id_prefix and not matches_nothing(query):
            return self._by_run_id
        return self._records

    def list_query(
        self, query: RunQuery, limit: int, after: Key | None = None
    ) -> tuple[str, list[object]]:
        """The statement ``list_runs`` runs for one page, with its arguments."""
        where, args = _where(query, after)
        direction = "DESC" if query.newest_first else "ASC"
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self._from(query)}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at {direction}, run_id {direction} LIMIT %s"
        )
        return sql, [*args, limit]

    def count_query(self, query: RunQuery, cap: int) -> tuple[str, list[object]]:
        """The statement ``count_runs`` runs, with its arguments."""
        where, args = _where(query, None)
        inner = (
            f"SELECT 1 FROM {self._from(query)}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " LIMIT %s"
        )
        return f"SELECT COUNT(*) FROM ({inner}) AS matching", [*args, max(0, cap)]


def _where(query: RunQuery, after: Key | None) -> tuple[list[str], list[object]]:
    check_query(query)
    where: list[str] = []
    args: list[object] = []
    if query.workflow_name:
        where.append("workflow_name = %s")
        args.append(query.workflow_name)
    if matches_nothing(query):
        where.append("FALSE")
    elif query.run_id_prefix:
        _starts_with("run_id", query.run_id_prefix, where, args)
    if query.foreign_id is not None:
        where.append("foreign_id = %s")
        args.append(query.foreign_id)
    if query.foreign_id_prefix:
        _starts_with("foreign_id", query.foreign_id_prefix, where, args)
    for column, values in (
        ("status", [int(s) for s in query.statuses]),
        ("run_state", [int(s) for s in query.run_states]),
    ):
        if len(values) == 1:
            where.append(f"{column} = %s")
            args.append(values[0])
        elif values:
            where.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            args.extend(values)
    if query.created_after is not None:
        where.append("created_at >= %s")
        args.append(to_db(query.created_after))
    if query.created_before is not None:
        where.append("created_at < %s")
        args.append(to_db(query.created_before))
    if after is not None:
        at = to_db(from_us(after.created_at_us))
        op = "<" if query.newest_first else ">"
        where.append(f"created_at {op}= %s AND (created_at {op} %s OR run_id {op} %s)")
        args += [at, at, after.run_id]
    return where, args


def _starts_with(column: str, prefix: str, where: list[str], args: list[object]) -> None:
    """``column`` starts with ``prefix``: the range of it up to the prefix's successor."""
    where.append(f"{column} >= %s")
    args.append(prefix)
    successor = prefix_successor(prefix)
    if successor is not None:
        where.append(f"{column} < %s")
        args.append(successor)
