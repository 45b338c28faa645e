"""Runs listed by a filter, by keyset (``ListsRuns``) in SQLite: the statements.

Every shape is served by one of schema 3's indexes (``records_list_*``), which end in
``(created_at, run_id)``: a page is read in index order after the cursor's key (a row
value comparison, which SQLite seeks to) and never sorted. A foreign ID prefix is the
range ``foreign_id >= prefix AND foreign_id < successor`` (SQLite's ``BINARY`` collation
compares UTF-8 bytes, which is code point order), so ``%``, ``_`` and ``\\`` are text.
"""

from __future__ import annotations

from typing import Any

from ..._capabilities import RunQuery
from .._listing import Key, check_query, prefix_successor, to_us

__all__ = ["count_sql", "list_sql"]


def _where(query: RunQuery, after: Key | None) -> tuple[list[str], list[Any]]:
    check_query(query)
    where: list[str] = []
    params: list[Any] = []
    if query.workflow_name:
        where.append("workflow_name = ?")
        params.append(query.workflow_name)
    if query.foreign_id is not None:
        where.append("foreign_id = ?")
        params.append(query.foreign_id)
    if query.foreign_id_prefix:
        where.append("foreign_id >= ?")
        params.append(query.foreign_id_prefix)
        successor = prefix_successor(query.foreign_id_prefix)
        if successor is not None:
            where.append("foreign_id < ?")
            params.append(successor)
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
