"""``OutboxWrites``: records and their outbox rows, compare-and-set, one statement a batch.

A batch of writes is one statement (so one round trip and one commit): a data-modifying
CTE inserts the new runs with ``ON CONFLICT DO NOTHING`` (the primary key and the partial
unique index of active runs both count as conflicts), updates the others with
``WHERE run_id = ... AND version = <expected>``, inserts the outbox rows (and history
rows, see ``_record_sql``) of exactly the writes that applied, and reports which those
were. No failed write raises inside the transaction, so none aborts the others; the
outcome of a write that did not apply is told apart afterwards (an existing run ID is a
``VersionConflict``, else the foreign ID has an active run: ``WorkflowInProgress``). A
single write (a trigger, or a step alone in its batch) uses a plain statement without
arrays. Batches that touch one run twice, or an update that would make a second run
active, go write by write (``_savepoints``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..._errors import WorkflowError
from ..._protocols import RecordWrite
from ._database import Connection, Database
from ._outbox_cache import OutboxCache
from ._record_sql import batch, entangled, outcome, single
from ._savepoints import one_by_one

__all__ = ["OutboxWrites", "in_order"]


def in_order(rows: Sequence[asyncpg.Record], count: int) -> list[asyncpg.Record | None]:
    """A batch statement's rows in the order of its writes (by their ``ord``)."""
    ordered: list[asyncpg.Record | None] = [None] * count
    for row in rows:
        ordered[row["ord"]] = row
    return ordered


class OutboxWrites:
    """Stores writes with their outbox rows (see the module docstring)."""

    def __init__(self, db: Database, cache: OutboxCache, *, history: bool = True) -> None:
        self._db = db
        self._cache = cache
        t = db.tables
        others = db.others_listen_sql
        tables = {
            "outbox": t.outbox,
            "failures": t.failures,
            "history": t.history if history else "",
        }
        self._batch = batch(t.records, t.channel, others, **tables)
        self._single = {
            new: single(t.records, t.channel, others, new=new, **tables) for new in (True, False)
        }

    async def store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """One outcome per write (``None``: applied). Raises ``AdapterError``."""
        rows = None if entangled(writes) else await self._together(writes)
        if rows is None:
            cache, me = self._cache, self._db.member_id
            extras = [(cache.must_notify(w.record.workflow_name), me) for w in writes]
            rows = await one_by_one(self._db, writes, self._single, extras)
        outcomes = [outcome(w, row) for w, row in zip(writes, rows, strict=True)]
        self._cache.wrote(writes, [o is None for o in outcomes])
        return outcomes

    async def _together(self, writes: Sequence[RecordWrite]) -> list[asyncpg.Record | None] | None:
        """The rows of one statement for all ``writes``; ``None`` if an update would make a
        second run active (not a valid transition, but a store cannot assume that)."""
        me = self._db.member_id
        cache = self._cache

        async def work(conn: Connection) -> list[asyncpg.Record | None] | None:
            try:
                if len(writes) == 1:
                    stmt = self._single[writes[0].expected_version == 0]
                    notify = cache.must_notify(writes[0].record.workflow_name)
                    return [await conn.fetchrow(stmt.sql, *stmt.args(writes), notify, me)]
                stmt = self._batch
                rows = await conn.fetch(stmt.sql, *stmt.args(writes), cache.notified(writes), me)
                return in_order(rows, len(writes))
            except asyncpg.UniqueViolationError:
                return None

        return await self._db.run("storing records", work)
