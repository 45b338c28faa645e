"""``Outbox``: the record store's outbox reads, deletes and the relay's wake-up.

Outbox rows are inserted by the record writes' transactions (``_record_writes``); here
they are listed oldest first (``outbox_by_workflow``: workflow, then ``seq``) and deleted
by ID once relayed.

MySQL has no notifications, so ``wait_for_outbox`` is woken two ways: at once by this
process's writes (the workflow's in-process ``Signal``, fired after each commit), and by
polling for other processes' writes: ``SELECT 1 ... LIMIT 1`` on the workflow's index,
which finds any row, since the relay waits only after a list found none. The interval is
adaptive per workflow: ``poll_min`` after a list found events, doubling up to
``poll_max`` while the outbox stays empty. The relay lists again at its own polling
timeout (0.25 s by default) whatever happens, so a wait shorter than the interval only
waits on the signal: an idle relay costs its own lists and at most one poll per
``poll_max``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from ..._event import OutboxEvent
from .._rows import HeaderDecoder
from ._database import Database
from ._record_writes import outbox_signal
from ._rows import from_db, name

__all__ = ["Outbox"]

_DELETES_PER_STATEMENT: Final = 1000
_headers = HeaderDecoder(logging.getLogger("conveyor.adapters.mysql"))


def _event(row: Sequence[Any]) -> OutboxEvent:
    raw_id, workflow_name, run_id, type, headers, created_at = row
    id, workflow, run = str(name(raw_id)), str(name(workflow_name)), str(name(run_id))
    return OutboxEvent(
        id=id,
        workflow_name=workflow,
        run_id=run,
        type=int(type),
        headers=_headers.decode(
            headers, ("outbox", id), f"outbox event {id!r}", workflow=workflow, run_id=run
        ),
        created_at=from_db(created_at),
    )


class Outbox:
    """The outbox statements of one installation (module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables.outbox
        self._list = (
            f"SELECT id, workflow_name, run_id, type, headers, created_at FROM {t} "
            "WHERE workflow_name = %s ORDER BY seq LIMIT %s"
        )
        self._any = f"SELECT 1 FROM {t} WHERE workflow_name = %s LIMIT 1"
        self._delete = f"DELETE FROM {t} WHERE id IN "
        self._intervals: dict[str, float] = {}

    async def list(self, workflow_name: str, limit: int) -> list[OutboxEvent]:
        rows = await self._db.fetch(
            "listing outbox events", self._list, [workflow_name, max(0, limit)]
        )
        if rows:
            self._intervals.pop(workflow_name, None)  # activity: poll soon again
        return [_event(row) for row in rows]

    async def delete(self, ids: Sequence[str]) -> None:
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), _DELETES_PER_STATEMENT):
            chunk = unique[i : i + _DELETES_PER_STATEMENT]
            sql = self._delete + "(" + ", ".join(["%s"] * len(chunk)) + ")"
            await self._db.execute("deleting outbox events", sql, chunk)

    async def wait(self, workflow_name: str, timeout: float) -> None:
        signal = self._db.signal(outbox_signal(workflow_name))
        since = signal.generation
        options = self._db.options
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            interval = self._intervals.get(workflow_name, options.poll_min)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await signal.wait(min(remaining, interval), since=since)
            if signal.generation != since or time.monotonic() >= deadline:
                return
            if await self._db.fetch("polling the outbox", self._any, [workflow_name]):
                self._intervals.pop(workflow_name, None)
                return
            self._intervals[workflow_name] = min(interval * 2, options.poll_max)
