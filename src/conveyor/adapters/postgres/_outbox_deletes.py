"""``DelayedDeletes``: relayed outbox events are deleted from the table in batches.

The relay deletes what it sent after each batch it relays; one ``DELETE`` for several
relay batches costs the database less than one each. The store forgets relayed events at
once (its lists leave them out); the table follows within ``DELAY`` seconds, or at once
when ``BATCH`` of them wait. Until then another process's relay (after a hand-over) may
send them again, and a crash sends them again too; the event log drops such copies (see
``PostgresEventStreamer``), and delivery is at least once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from ..._errors import AdapterError
from ._database import Database

__all__ = ["DelayedDeletes"]

log = logging.getLogger("conveyor.adapters.postgres")


class DelayedDeletes:
    """Outbox event IDs relayed and not yet deleted from the table (``ids``)."""

    DELAY = 0.02
    """Seconds relayed outbox events wait to be deleted together."""
    BATCH = 2000
    """Relayed outbox events that are deleted at once, without waiting."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = f"DELETE FROM {db.tables.outbox} WHERE id = ANY($1::text[])"
        self.ids: set[str] = set()
        """Relayed, not yet deleted from the table: lists leave them out."""
        self._task: asyncio.Task[None] | None = None

    async def add(self, ids: Collection[str]) -> None:
        """Delete ``ids`` soon (now, if enough are waiting: then raises ``AdapterError``)."""
        self.ids.update(ids)
        if len(self.ids) >= self.BATCH:
            await self.flush()
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._later(), name="conveyor-postgres-outbox-deleter"
            )

    async def _later(self) -> None:
        failures = 0
        while self.ids:
            await asyncio.sleep(self.DELAY * 2 ** min(failures, 8))
            try:
                await self.flush()
                failures = 0
            except AdapterError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("cannot delete relayed outbox events (will retry): %s", exc)

    async def flush(self) -> None:
        """Delete the waiting events from the table now. Raises ``AdapterError``."""
        if not self.ids:
            return
        ids = list(self.ids)
        await self._db.write("deleting outbox events", self._sql, ids)
        self.ids.difference_update(ids)

    async def close(self) -> None:
        """Stop waiting and delete what is left (best effort). Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        with contextlib.suppress(AdapterError):
            await self.flush()
