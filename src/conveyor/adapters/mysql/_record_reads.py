"""``RecordReads``: the record store's queries, with concurrent lookups merged.

Lookups made in one event-loop turn (a step consumer looks up a whole batch of runs at
once) are one ``run_id IN (...)`` query on the ``records_run_id`` index: the first
lookup of the turn starts a task that runs the query once the turn's other lookups have
joined, and each caller waits for its own answer (a caller that is cancelled does not
cancel the query the others wait for). A row that does not decode fails its own lookup
alone: ``DecodedRow.get`` raises ``DecodeError`` with the stand-in for that caller only.

``latest`` reads ``records_list_by_foreign_id`` (the foreign ID's runs, newest first);
``list`` orders by ``(created_at, seq)``, which ``records_by_created`` and
``records_by_workflow`` hold (InnoDB ends them in the primary key, ``seq``), and a
foreign ID filter reads the foreign ID's runs from ``records_list_by_foreign_id`` or
``records_list_any_foreign_id`` first. ``list`` returns stand-ins among the healthy
records.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Sequence
from typing import Final

from ..._errors import RecordNotFound
from ..._ids import check_foreign_id
from ..._protocols import Order, RecordFilter
from ..._record import Record
from .._rows import DecodedRow
from ._database import Database
from ._rows import COLUMNS, record, to_db

__all__ = ["RecordReads"]

_LOOKUPS_PER_QUERY: Final = 1000
_SELECT_COLUMNS: Final = ", ".join(COLUMNS)


class RecordReads:
    """Reads of the ``records`` table (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        records = db.tables.records
        self._select = f"SELECT {_SELECT_COLUMNS} FROM {records}"
        self._latest = (
            f"{self._select} WHERE workflow_name = %s AND foreign_id = %s "
            "ORDER BY created_at DESC, seq DESC LIMIT 1"
        )
        self._pending: dict[str, asyncio.Future[DecodedRow | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lookup

    async def lookup(self, run_id: str) -> Record:
        """The record of ``run_id`` (lookups of one turn share a query). Raises
        ``RecordNotFound``, or ``DecodeError`` if its row does not decode."""
        fut = self._pending.get(run_id)
        if fut is None:
            if not self._pending:
                task = asyncio.get_running_loop().create_task(
                    self._run_lookups(), name="conveyor-mysql-lookups"
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            fut = self._pending[run_id] = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_retrieved)
        found = await asyncio.shield(fut)
        if found is None:
            raise RecordNotFound(f"record not found: run_id={run_id}")
        return found.get()

    async def _run_lookups(self) -> None:
        # Started in the turn of the first lookup, this runs after that turn's others.
        pending, self._pending = self._pending, {}
        run_ids = list(pending)
        try:
            found: dict[str, DecodedRow] = {}
            for i in range(0, len(run_ids), _LOOKUPS_PER_QUERY):
                chunk = run_ids[i : i + _LOOKUPS_PER_QUERY]
                sql = f"{self._select} WHERE run_id IN ({', '.join(['%s'] * len(chunk))})"
                for row in await self._db.fetch("looking up records", sql, chunk):
                    decoded = record(row)
                    found[decoded.record.run_id] = decoded
        except BaseException as exc:
            for fut in pending.values():
                if not fut.done():
                    if isinstance(exc, Exception):
                        fut.set_exception(exc)
                    else:
                        fut.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for run_id, fut in pending.items():
            if not fut.done():
                fut.set_result(found.get(run_id))

    # ------------------------------------------------------------------ latest, list

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The newest run of ``foreign_id``. Raises ``RecordNotFound``, or
        ``DecodeError`` if its row does not decode."""
        check_foreign_id(foreign_id)
        rows = await self._db.fetch(
            "reading the latest record", self._latest, [workflow_name, foreign_id]
        )
        if not rows:
            raise RecordNotFound(
                f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
            )
        return record(rows[0]).get()

    async def list(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> Sequence[Record]:
        sql, args = self.list_query(workflow_name, offset, limit, order, filter)
        rows = await self._db.fetch("listing records", sql, args)
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
        if workflow_name:
            where.append("workflow_name = %s")
            args.append(workflow_name)
        if filter is not None:
            for column, values in (
                ("foreign_id", [check_foreign_id(f) for f in filter.foreign_ids]),
                ("status", [int(s) for s in filter.statuses]),
                ("run_state", [int(s) for s in filter.run_states]),
            ):
                if values:
                    where.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
                    args.extend(values)
            if filter.created_after is not None:
                where.append("created_at > %s")
                args.append(to_db(filter.created_after))
            if filter.created_before is not None:
                where.append("created_at < %s")
                args.append(to_db(filter.created_before))
        direction = "DESC" if order is Order.DESC else "ASC"
        sql = (
            self._select
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at {direction}, seq {direction} LIMIT %s OFFSET %s"
        )
        return sql, [*args, limit, max(0, offset)]

    async def close(self) -> None:
        """Wait for the lookups under way (their callers are owed an answer)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def _retrieved(fut: asyncio.Future[DecodedRow | None]) -> None:
    """Mark a lookup's failure as seen: its callers may all have been cancelled."""
    if not fut.cancelled():
        fut.exception()
