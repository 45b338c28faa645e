"""``RecordReads``: the record store's queries, with concurrent lookups merged.

Lookups made in one event-loop turn (a step consumer looks up a whole batch of runs at
once) are one ``run_id = ANY($1)`` query (``Coalescer``). ``list`` has an index for every
shape of filter it builds (``list_query``).

A row that does not decode fails its own lookup alone: the batch answers each caller
with its own row (``DecodedRow``), and ``get`` raises ``DecodeError`` with the stand-in
for that caller only. ``list`` returns stand-ins among the healthy records.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from ..._errors import RecordNotFound
from ..._ids import check_foreign_id
from ..._protocols import Order, RecordFilter
from ..._record import Record
from .._rows import DecodedRow
from ._coalesce import Coalescer
from ._database import Database
from ._record_sql import COLUMNS, record

__all__ = ["RecordReads"]


class RecordReads:
    """Reads of the ``records`` table (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._records = db.tables.records
        self._lookup_sql = f"SELECT {COLUMNS} FROM {self._records} WHERE run_id = ANY($1::text[])"
        self._latest_sql = (
            f"SELECT {COLUMNS} FROM {self._records} WHERE foreign_id = $2 "
            "AND workflow_name = $1 ORDER BY created_at DESC, seq DESC LIMIT 1"
        )
        self._lookups = Coalescer(self._lookup_batch, "conveyor-postgres-lookups")

    async def lookup(self, run_id: str) -> Record:
        """The record of ``run_id`` (lookups of one turn share a query). Raises
        ``RecordNotFound``, or ``DecodeError`` if its row does not decode."""
        found = await self._lookups.submit(run_id)
        if found is None:
            raise RecordNotFound(f"record not found: run_id={run_id}")
        return found.get()

    async def _lookup_batch(self, run_ids: builtins.list[str]) -> builtins.list[DecodedRow | None]:
        rows = await self._db.fetch("looking up records", self._lookup_sql, run_ids)
        found = {row["run_id"]: record(row) for row in rows}
        return [found.get(run_id) for run_id in run_ids]

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The newest run of ``foreign_id``. Raises ``RecordNotFound``, or ``DecodeError``
        if its row does not decode."""
        check_foreign_id(foreign_id)
        row = await self._db.fetchrow(
            "reading the latest record", self._latest_sql, workflow_name, foreign_id
        )
        if row is None:
            raise RecordNotFound(
                f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
            )
        return record(row).get()

    async def list(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> Sequence[Record]:
        sql, args = self.list_query(workflow_name, offset, limit, order, filter)
        rows = await self._db.fetch("listing records", sql, *args)
        return [record(row).record for row in rows]

    def list_query(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> tuple[str, builtins.list[object]]:
        """The statement ``list`` runs, with its arguments (every shape has an index)."""
        if limit <= 0:
            limit = 25
        where: builtins.list[str] = []
        args: builtins.list[object] = []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if workflow_name:
            where.append(f"workflow_name = {arg(workflow_name)}")
        if filter is not None:
            if filter.foreign_ids:
                fids = [check_foreign_id(f) for f in filter.foreign_ids]
                where.append(f"foreign_id = ANY({arg(fids)}::text[])")
            if filter.statuses:
                where.append(f"status = ANY({arg([int(s) for s in filter.statuses])}::bigint[])")
            if filter.run_states:
                states = [int(s) for s in filter.run_states]
                where.append(f"run_state = ANY({arg(states)}::smallint[])")
            if filter.created_after is not None:
                where.append(f"created_at > {arg(filter.created_after)}")
            if filter.created_before is not None:
                where.append(f"created_at < {arg(filter.created_before)}")
        direction = "DESC" if order is Order.DESC else "ASC"
        sql = (
            f"SELECT {COLUMNS} FROM {self._records}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at {direction}, seq {direction}"
            + f" LIMIT {arg(limit)} OFFSET {arg(max(0, offset))}"
        )
        return sql, args

    async def close(self) -> None:
        """Stop merging lookups. Idempotent."""
        await self._lookups.close()
