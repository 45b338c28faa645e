"""Runs listed by a filter, by keyset (``ListsRuns``) in SQLite: the statements.

Every shape is served by one of schema 3's indexes (``records_list_*``), which end in
``(created_at, run_id)``: a page is read in index order after the cursor's key (a row
value comparison, which SQLite seeks to) and never sorted. A foreign ID prefix is the
range ``foreign_id >= prefix AND foreign_id < successor`` (SQLite's ``BINARY`` collation
compares UTF-8 bytes, which is code point order), so ``%``, ``_`` and ``\\`` are text.

A run ID prefix is the same range of ``run_id``, served by the column's ``UNIQUE`` index
(``sqlite_autoindex_records_1``, in ``BINARY`` order): the prefix's runs are read from it
and then sorted (the matches, not the table). With it the workflow name is compared as
``+workflow_name``, which no index can serve: otherwise the planner picks the workflow's
``records_list_*`` index for its order and reads every run of the workflow to find the
prefix's few.
"""

from __future__ import annotations

from typing import Any

from ..._capabilities import RunQuery
from .._listing import Key, check_query, matches_nothing, prefix_successor, to_us

__all__ = ["count_sql", "list_sql"]


def _where(query: RunQuery, after: Key | None) -> tuple[list[str], list[Any]]:
    check_query(query)
    where: list[str] = []
    params: list[Any] = []
    run_id_prefix = query.run_id_prefix
    if query.workflow_name:
        where.append("+workflow_name = ?" if run_id_prefix else "workflow_name = ?")
        params.append(query.workflow_name)
    if matches_nothing(query):
        where.append("0")
    elif run_id_prefix:
        _starts_with("run_id", run_id_prefix, where, params)
    if query.foreign_id is not None:
        where.append("foreign_id = ?")
        params.append(query.foreign_id)
    if query.foreign_id_prefix:
        _starts_with("foreign_id", query.foreign_id_prefix, where, params)
    for column, values in (
        ("status", [int(s) for s in query.statuses]),
        ("run_state", [int(s) for s in query.run_states]),
    ):
        if len(values) == 1:
            where.append(f"{column} = ?")
            params.append(values[0])
        elif values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if query.created_after is not None:
        where.append("created_at >= ?")
        params.append(to_us(query.created_after))
    if query.created_before is not None:
        where.append("created_at < ?")
        params.append(to_us(query.created_before))
    if after is not None:
        where.append(f"(created_at, run_id) {'<' if query.newest_first else '>'} (?, ?)")
        params += [after.created_at_us, after.run_id]
    return where, params


def _starts_with(column: str, prefix: str, where: list[str], params: list[Any]) -> None:
    """``column`` starts with ``prefix``: the range of it up to the prefix's successor."""
    where.append(f"{column} >= ?")
    params.append(prefix)
    successor = prefix_successor(prefix)
    if successor is not None:
        where.append(f"{column} < ?")
        params.append(successor)


def list_sql(select: str, query: RunQuery, after: Key | None, limit: int) -> tuple[str, list[Any]]:
    """``select`` (``SELECT <columns> FROM records``) narrowed to ``query``'s runs after
    ``after``, in its order, at most ``limit`` rows."""
    where, params = _where(query, after)
    direction = "DESC" if query.newest_first else "ASC"
    sql = select + (f" WHERE {' AND '.join(where)}" if where else "")
    sql += f" ORDER BY created_at {direction}, run_id {direction} LIMIT ?"
    return sql, [*params, limit]


def count_sql(query: RunQuery, cap: int) -> tuple[str, list[Any]]:
    """How many runs match ``query``, counting at most ``cap`` rows."""
    where, params = _where(query, None)
    inner = "SELECT 1 FROM records" + (f" WHERE {' AND '.join(where)}" if where else "")
    return f"SELECT count(*) FROM ({inner} LIMIT ?)", [*params, max(0, cap)]
