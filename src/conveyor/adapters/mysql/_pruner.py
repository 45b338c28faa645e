"""Pruning the event log: consumed events, events nobody reads, dead cursors.

One process of an installation prunes at a time (``GET_LOCK`` on the installation's
name, tried without waiting; the server releases it if that process's connection dies).
Every statement deletes a bounded chunk (``DELETE ... LIMIT``) on its own (autocommit),
so pruning never holds many row locks for long, and readers (consistent reads) never
wait for it. What counts as consumed or dead is set by the ``*_retention`` options
(``MySQLOptions``), in this order:

- ``cursors``: cursors not written for ``cursor_retention`` (open receivers rewrite
  theirs every ``cursor_retention / 8``); first, since they would hold back the rest.
- ``events``: events that every cursor of their topic passed, once ``event_retention``
  old (the oldest cursor of the topic decides).
- ``unread_events``: events of a topic with no cursor at all, after ``unread_retention``
  (by default ``event_retention`` too, so a run-state-change topic that nobody reads does
  not keep an event per finished run for long).

The ``topics`` rows are never deleted: they hold the last ID given out, which must never
be given out again.

Other tables: ``extra`` is the hook. The timeout store's pruning (finished timeouts after
``timeout_retention``) and the role scheduler's (stale members and roles) are theirs, not
written here: the backend passes them as ``Pruner(db, extra={"timeouts":
prune_timeouts, "roles": prune_roles})`` (each ``async (db) -> rows deleted``), and they
run after the event log's steps in the same pass, under the same lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..._errors import AdapterError
from ..._kit._hash import fnv1a64
from ._database import Connection, Cursor, Database
from ._options import Tables

__all__ = ["CHUNK", "ExtraPrune", "PruneStep", "Pruner", "event_log_steps"]

log = logging.getLogger("conveyor.adapters.mysql")

CHUNK = 5_000
"""The most rows one statement deletes."""
_BEFORE = "UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND"

ExtraPrune = Callable[[Database], Awaitable[int]]
"""Another table's pruning: deletes what is due and returns how many rows."""


@dataclass(frozen=True, slots=True)
class PruneStep:
    """One kind of row to prune: ``sql`` deletes at most ``CHUNK`` of them and takes one
    parameter, the age in microseconds (use ``{before}`` for the cutoff expression,
    ``UTC_TIMESTAMP(6)`` minus that age); ``option`` names the ``MySQLOptions`` field that
    gives the age in seconds."""

    kind: str
    sql: str
    option: str


def event_log_steps(t: Tables) -> list[PruneStep]:
    """The event log's steps, in the order they run (module docstring)."""
    return [
        PruneStep(
            "cursors",
            f"DELETE FROM {t.cursors} WHERE updated_at < {{before}} LIMIT {CHUNK}",
            "cursor_retention",
        ),
        PruneStep(
            "events",
            f"DELETE FROM {t.events} WHERE created_at < {{before}} AND id <= ("
            f"SELECT MIN(c.position) FROM {t.cursors} c WHERE c.topic = {t.events}.topic"
            f") LIMIT {CHUNK}",
            "event_retention",
        ),
        PruneStep(
            "unread_events",
            f"DELETE FROM {t.events} WHERE created_at < {{before}} AND NOT EXISTS ("
            f"SELECT 1 FROM {t.cursors} c WHERE c.topic = {t.events}.topic) LIMIT {CHUNK}",
            "unread_retention",
        ),
    ]


class Pruner:
    """Deletes what no reader needs any more (``prune()`` once, or ``run()`` forever)."""

    def __init__(self, db: Database, *, extra: Mapping[str, ExtraPrune] | None = None) -> None:
        self._db = db
        self._lock = f"conveyor-prune-{fnv1a64(f'{db.args.database}:{db.tables.prefix}'):016x}"
        self._steps = event_log_steps(db.tables)
        self._extra = dict(extra or {})

    async def prune(self) -> dict[str, int] | None:
        """One pass; returns rows deleted per kind, or ``None`` if another process is
        pruning. Raises ``AdapterError``."""

        async def work(conn: Connection) -> dict[str, int] | None:
            async with conn.cursor() as cur:
                await cur.execute("SELECT GET_LOCK(%s, 0)", (self._lock,))
                (got,) = await cur.fetchone()
                if got != 1:
                    return None
                try:
                    deleted = {step.kind: await self._delete(cur, step) for step in self._steps}
                    for kind, prune in self._extra.items():
                        deleted[kind] = await prune(self._db)
                    return deleted
                finally:
                    await cur.execute("SELECT RELEASE_LOCK(%s)", (self._lock,))
                    await cur.fetchall()

        return await self._db.run("pruning", work)

    async def _delete(self, cur: Cursor, step: PruneStep) -> int:
        age = float(getattr(self._db.options, step.option))
        sql = step.sql.format(before=_BEFORE)
        total = 0
        while True:
            count = int(await cur.execute(sql, (int(age * 1_000_000),)))
            total += count
            if count < CHUNK:
                return total

    async def run(self) -> None:
        """Prune every ``prune_interval`` seconds (with jitter) until cancelled; failures
        are logged and retried at the next interval."""
        interval = self._db.options.prune_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            with contextlib.suppress(AdapterError):
                try:
                    deleted = await self.prune()
                except AdapterError as exc:
                    log.warning("pruning failed (will retry): %s", exc)
                    raise
                if deleted and any(deleted.values()):
                    log.debug("pruned %s", deleted)
