"""``MySQLTimeoutStore``: timeouts in a table; ``prune_timeouts`` deletes completed ones.

Wake-ups: a create fires this process's signal of the workflow, so its pollers wake at
once. MySQL cannot notify other processes, so ``wait_for_insert`` waits at most
``poll_max`` seconds (1 s by default) before returning, and the poller re-reads: another
process's create is seen within ``min(timeout, poll_max)``. The timeout consumer polls
every ``polling_frequency`` (0.5 s by default) anyway, so this adds no queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..._errors import TimeoutNotFound
from ..._protocols import TimeoutRecord
from ._database import Connection, Database
from ._options import MySQLOptions

__all__ = ["MySQLTimeoutStore", "prune_timeouts"]

_COLUMNS = (
    "id, workflow_name, foreign_id, run_id, status, expire_at, created_at, "
    "completed_at IS NOT NULL, record_version, idx"
)
_PRUNE_CHUNK = 1000


def to_db(moment: datetime) -> datetime:
    """``moment`` as the naive UTC ``DATETIME`` the tables hold (naive input is UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_db(value: datetime) -> datetime:
    """A ``DATETIME`` read back (naive UTC) as an aware datetime."""
    return value.replace(tzinfo=UTC)


def _timeout(row: tuple[Any, ...]) -> TimeoutRecord:
    return TimeoutRecord(
        id=int(row[0]),
        workflow_name=row[1],
        foreign_id=row[2],
        run_id=row[3],
        status=int(row[4]),
        expire_at=from_db(row[5]),
        created_at=from_db(row[6]),
        completed=bool(row[7]),
        record_version=int(row[8]),
        index=int(row[9]),
    )


class MySQLTimeoutStore:
    """``TimeoutStore`` on MySQL or MariaDB (see the module docstring for wake-ups).

    IDs come from an ``AUTO_INCREMENT`` column (1, 2, 3, ... in a new table; a repeated
    create may leave a gap, never a repeat). ``create`` is idempotent on (workflow, run ID,
    status, record version, index) through a unique key, in one statement. Completed
    timeouts stay (so repeated creates stay idempotent) until ``prune_timeouts`` deletes
    them, ``timeout_retention`` after their completion. Every query is served by an
    index (the migration says which).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        t = self._t = db.tables.timeouts
        # On a duplicate key, LAST_INSERT_ID(id) makes the existing row's ID the one
        # returned, and changes nothing in the row.
        self._create_sql = (
            f"INSERT INTO {t} (workflow_name, foreign_id, run_id, status, expire_at, "
            "created_at, record_version, idx) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)"
        )
        self._listed_generation: dict[tuple[str, int], int] = {}

    async def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        created_at: datetime,
        record_version: int = 0,
        index: int = 0,
    ) -> int:
        args = (
            workflow_name,
            foreign_id,
            run_id,
            int(status),
            to_db(expire_at),
            to_db(created_at),
            int(record_version),
            int(index),
        )

        async def work(conn: Connection) -> int:
            async with conn.cursor() as cur:
                await cur.execute(self._create_sql, args)
                return int(cur.lastrowid)

        found = await self._db.run("creating a timeout", work)
        self._db.signal(f"t:{workflow_name}").fire()
        return found

    async def complete(self, id: int) -> None:
        changed = await self._db.execute(
            "completing a timeout",
            f"UPDATE {self._t} SET completed_at = UTC_TIMESTAMP(6) "
            "WHERE id = %s AND completed_at IS NULL",
            (id,),
        )
        if not changed:  # completed before (that is fine), or no such timeout
            await self._require(id)

    async def cancel(self, id: int) -> None:
        deleted = await self._db.execute(
            "cancelling a timeout", f"DELETE FROM {self._t} WHERE id = %s", (id,)
        )
        if not deleted:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def _require(self, id: int) -> None:
        rows = await self._db.fetch(
            "looking up a timeout", f"SELECT 1 FROM {self._t} WHERE id = %s", (id,)
        )
        if not rows:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        rows = await self._db.fetch(
            "listing timeouts",
            f"SELECT {_COLUMNS} FROM {self._t} WHERE workflow_name = %s "
            "AND completed_at IS NULL ORDER BY id",
            (workflow_name,),
        )
        return [_timeout(row) for row in rows]

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        signal = self._db.signal(f"t:{workflow_name}")
        self._listed_generation[(workflow_name, int(status))] = signal.generation
        rows = await self._db.fetch(
            "listing due timeouts",
            f"SELECT {_COLUMNS} FROM {self._t} WHERE workflow_name = %s AND status = %s "
            "AND completed_at IS NULL AND expire_at <= %s ORDER BY id",
            (workflow_name, int(status), to_db(now)),
        )
        return [_timeout(row) for row in rows]

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        rows = await self._db.fetch(
            "reading the next expiry",
            f"SELECT MIN(expire_at) FROM {self._t} "
            "WHERE workflow_name = %s AND status = %s AND completed_at IS NULL",
            (workflow_name, int(status)),
        )
        earliest = rows[0][0] if rows else None
        return None if earliest is None else from_db(earliest)

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        """Wait for a create in this process, at most ``min(timeout, poll_max)`` seconds.

        Returns at once if a create happened here since the oldest ``list_valid`` of the
        workflow, so a poller never sleeps through a create that landed after it looked.
        Other processes' creates are found by the poller's next read.
        """
        signal = self._db.signal(f"t:{workflow_name}")
        listed = [g for (name, _), g in self._listed_generation.items() if name == workflow_name]
        await signal.wait(min(timeout, self._db.options.poll_max), min(listed, default=None))

    async def close(self) -> None:
        """Nothing of its own to release: the ``Database`` is closed by its owner. Idempotent."""


async def prune_timeouts(db: Database, options: MySQLOptions | None = None) -> int:
    """Delete the timeouts completed more than ``timeout_retention`` seconds ago (by the
    database's clock), in chunks of 1,000 rows each in its own statement (no long
    locks); returns how many. Uncompleted timeouts are never deleted."""
    retention = (options or db.options).timeout_retention
    sql = (
        f"DELETE FROM {db.tables.timeouts} "
        "WHERE completed_at < UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND "
        f"ORDER BY completed_at LIMIT {_PRUNE_CHUNK}"
    )
    total = 0
    while True:
        deleted = await db.execute("pruning completed timeouts", sql, (int(retention * 1e6),))
        total += deleted
        if deleted < _PRUNE_CHUNK:
            return total
