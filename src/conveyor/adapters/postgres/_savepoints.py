"""The fallback for batches one statement cannot take: each write in its own savepoint.

Used when a batch is ``entangled`` (two writes of one run, or a new run beside another
write of its foreign ID: one statement could see them in another order than the batch's)
or when its statement met a unique index (an update that would make a second run of a
foreign ID active). The writes then go in order, all in one transaction and one commit; a
write that meets the index rolls back its savepoint alone and reports ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..._protocols import RecordWrite
from ._database import Connection, Database
from ._record_sql import Statement

__all__ = ["one_by_one"]


async def one_by_one(
    db: Database,
    writes: Sequence[RecordWrite],
    statement: dict[bool, Statement],
    extras: Sequence[Sequence[object]],
) -> list[asyncpg.Record | None]:
    """Each write's row from ``statement[write is new]`` (called with the write's arguments
    and its ``extras``), or ``None`` where the write met a unique index. Raises
    ``AdapterError`` (the transaction is then rolled back whole)."""

    async def work(conn: Connection) -> list[asyncpg.Record | None]:
        rows: list[asyncpg.Record | None] = []
        async with conn.transaction():
            for write, extra in zip(writes, extras, strict=True):
                stmt = statement[write.expected_version == 0]
                try:
                    async with conn.transaction():  # a savepoint
                        row = await conn.fetchrow(stmt.sql, *stmt.args((write,)), *extra)
                except asyncpg.UniqueViolationError:
                    row = None
                rows.append(row)
        return rows

    return await db.run("storing records", work)
