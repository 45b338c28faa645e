"""``EventPruner``: deletes the events every registered receiver has passed, once old.

Events are deleted once every receiver name registered on their topic has acknowledged
them and they are older than ``retention`` seconds (see ``SQLiteEventStreamer`` for
registration). Age is measured without timestamps: every pass notes the log's highest ID
with the time, and a later pass may delete up to the ID noted ``retention`` seconds ago.
Deletes go in chunks, so the write lock is never held for long.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from functools import partial

from ..._errors import AdapterError
from ._db import Database

__all__ = ["EventPruner", "last_event_id"]

_CHUNK = 2000


def last_event_id(conn: sqlite3.Connection) -> int:
    """The highest event ID ever assigned (in any topic; 0 if none)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return 0 if row is None else int(row["seq"])


def _delete_chunk(conn: sqlite3.Connection, *, topic: str, bound: int) -> int:
    """Delete up to ``_CHUNK`` of the topic's oldest events with ``id <= bound``."""
    row = conn.execute(
        "SELECT id FROM events WHERE topic = ? AND id <= ? ORDER BY id LIMIT 1 OFFSET ?",
        (topic, bound, _CHUNK - 1),
    ).fetchone()
    upto = bound if row is None else int(row["id"])
    cur = conn.execute("DELETE FROM events WHERE topic = ? AND id <= ?", (topic, upto))
    return cur.rowcount


def _bounds(conn: sqlite3.Connection, limit: int) -> list[tuple[str, int]]:
    """Per topic, the highest ID that may go: below every registered cursor and ``limit``."""
    mins = {
        row["topic"]: row["position"]
        for row in conn.execute(
            "SELECT topic, MIN(position) AS position FROM cursors GROUP BY topic"
        )
    }
    return [
        (row["topic"], min(limit, mins.get(row["topic"], limit)))
        for row in conn.execute("SELECT topic FROM topics")
    ]


class EventPruner:
    """Prunes the event log every ``interval`` seconds once started (``prune()`` on demand).

    ``before`` runs first in each pass (the streamer writes its pending cursors, so that
    acknowledgements made in this process count).
    """

    def __init__(
        self,
        db: Database,
        *,
        retention: float,
        interval: float,
        before: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._retention = retention
        self._interval = interval
        self._before = before
        self._marks: collections.deque[tuple[float, int]] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Prune in the background from now on (no-op if ``interval`` is 0 or closed)."""
        if self._task is None and self._interval > 0 and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._forever(), name="conveyor-sqlite-pruner"
            )

    async def close(self) -> None:
        """Stop the background passes. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(AdapterError):
                await self.prune()

    async def prune(self) -> int:
        """One pass; returns how many events were deleted. Raises ``AdapterError``."""
        await self._before()
        now = time.monotonic()
        marks = self._marks
        marks.append((now, await self._db.read(last_event_id)))
        limit = 0
        while marks and now - marks[0][0] >= self._retention:
            limit = marks.popleft()[1]
        if limit <= 0:
            return 0
        deleted = 0
        for topic, bound in await self._db.read(partial(_bounds, limit=limit)):
            while bound > 0:
                count = await self._db.write(partial(_delete_chunk, topic=topic, bound=bound))
                deleted += count
                if count < _CHUNK:
                    break
        return deleted
