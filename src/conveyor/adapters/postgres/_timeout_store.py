"""``PostgresTimeoutStore``: timeouts in a table, woken across processes by NOTIFY."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from ..._errors import TimeoutNotFound
from ..._protocols import TimeoutRecord
from ._database import Connection, Database

__all__ = ["PostgresTimeoutStore"]

_COLUMNS = (
    "id, workflow_name, foreign_id, run_id, status, expire_at, created_at, "
    "completed_at IS NOT NULL AS completed, record_version, idx"
)


def _timeout(row: asyncpg.Record) -> TimeoutRecord:
    return TimeoutRecord(
        id=row["id"],
        workflow_name=row["workflow_name"],
        foreign_id=row["foreign_id"],
        run_id=row["run_id"],
        status=row["status"],
        expire_at=row["expire_at"],
        created_at=row["created_at"],
        completed=row["completed"],
        record_version=row["record_version"],
        index=row["idx"],
    )


class PostgresTimeoutStore:
    """``TimeoutStore`` on PostgreSQL.

    IDs come from an identity column (1, 2, 3, ... in a new schema). ``create`` is
    idempotent on (workflow, run ID, status, record version, index) through a unique
    key; completed timeouts stay (so repeated creates stay idempotent) until pruned after
    ``timeout_retention``. ``list_valid`` and ``next_expiry`` use a partial index of the
    uncompleted timeouts.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables.timeouts
        channel = db.tables.channel
        key = (
            "workflow_name = $1 AND run_id = $3 AND status = $4 "
            "AND record_version = $7 AND idx = $8"
        )
        self._create = f"""
WITH existing AS (SELECT id FROM {t} WHERE {key}),
inserted AS (
    INSERT INTO {t} (workflow_name, foreign_id, run_id, status, expire_at, created_at,
                     record_version, idx)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT id, (SELECT count(pg_notify({channel!r}, 't:' || $1)) FROM inserted) FROM inserted
UNION ALL SELECT id, 0 FROM existing
"""
        self._t = t
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
            expire_at,
            created_at,
            record_version,
            index,
        )

        async def work(conn: Connection) -> int | None:
            rows = await conn.fetch(self._create, *args)
            ids = [row["id"] for row in rows if row["id"] is not None]
            return ids[0] if ids else None

        for _ in range(3):
            # None: a concurrent create of the same key committed after our snapshot.
            found = await self._db.run("creating a timeout", work)
            if found is not None:
                self._db.fire(f"t:{workflow_name}")
                return int(found)
        raise AssertionError("timeout neither inserted nor found")  # pragma: no cover

    async def complete(self, id: int) -> None:
        rows = await self._db.write(
            "completing a timeout",
            f"UPDATE {self._t} SET completed_at = coalesce(completed_at, now()) "
            "WHERE id = $1 RETURNING id",
            id,
        )
        if not rows:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def cancel(self, id: int) -> None:
        rows = await self._db.write(
            "cancelling a timeout", f"DELETE FROM {self._t} WHERE id = $1 RETURNING id", id
        )
        if not rows:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        rows = await self._db.fetch(
            "listing timeouts",
            f"SELECT {_COLUMNS} FROM {self._t} WHERE workflow_name = $1 "
            "AND completed_at IS NULL ORDER BY id",
            workflow_name,
        )
        return [_timeout(row) for row in rows]

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        signal = self._db.signal(f"t:{workflow_name}")
        self._listed_generation[(workflow_name, int(status))] = signal.generation
        rows = await self._db.fetch(
            "listing due timeouts",
            f"SELECT {_COLUMNS} FROM {self._t} WHERE workflow_name = $1 AND status = $2 "
            "AND expire_at <= $3 AND completed_at IS NULL ORDER BY id",
            workflow_name,
            int(status),
            now,
        )
        return [_timeout(row) for row in rows]

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        row = await self._db.fetchrow(
            "reading the next expiry",
            f"SELECT min(expire_at) AS earliest FROM {self._t} "
            "WHERE workflow_name = $1 AND status = $2 AND completed_at IS NULL",
            workflow_name,
            int(status),
        )
        return None if row is None else row["earliest"]

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        """Wait for a create's notification (this process's creates fire it directly).

        Returns at once if a create happened since the oldest ``list_valid`` of the
        workflow, so a poller never sleeps through a create that landed after it looked.
        """
        signal = self._db.signal(f"t:{workflow_name}")
        listed = [g for (name, _), g in self._listed_generation.items() if name == workflow_name]
        await signal.wait(min(timeout, self._db.wait_timeout()), min(listed, default=None))

    async def close(self) -> None:
        """Nothing of its own to release: the ``Database`` is closed by its owner. Idempotent."""
