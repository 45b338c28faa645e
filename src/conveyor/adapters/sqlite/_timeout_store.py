"""Timeouts in SQLite."""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..._errors import TimeoutNotFound
from ..._protocols import TimeoutRecord
from ._db import Database, from_us, to_us

__all__ = ["SQLiteTimeoutStore"]

_COLUMNS = (
    "id, workflow_name, foreign_id, run_id, status, expire_at, created_at, completed, "
    "record_version, timeout_index"
)


def _timeout(row: sqlite3.Row) -> TimeoutRecord:
    return TimeoutRecord(
        id=row["id"],
        workflow_name=row["workflow_name"],
        foreign_id=row["foreign_id"],
        run_id=row["run_id"],
        status=row["status"],
        expire_at=from_us(row["expire_at"]),
        created_at=from_us(row["created_at"]),
        completed=bool(row["completed"]),
        record_version=row["record_version"],
        index=row["timeout_index"],
    )


class SQLiteTimeoutStore:
    """``TimeoutStore`` on a SQLite file.

    IDs come from an ``AUTOINCREMENT`` column: they count from 1 in a new file and are
    never reused, also after ``cancel`` (which deletes). A unique key on (workflow, run
    ID, status, record version, index) makes ``create`` idempotent across processes.
    ``wait_for_insert`` is woken at once by this process's inserts and within a few
    milliseconds by other processes'.
    """

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self._db = db
        self._owns_db = owns_db
        self._looked: weakref.WeakKeyDictionary[asyncio.Task[Any], dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    async def open(
        cls, path: str, *, create_schema: bool = True, **options: Any
    ) -> SQLiteTimeoutStore:
        """A store on ``path`` with its own connection (``options`` go to ``Database``)."""
        db = Database(path, **options)
        await db.open(create_schema=create_schema)
        return cls(db, owns_db=True)

    async def close(self) -> None:
        """Close the connection if this store opened it. Idempotent."""
        if self._owns_db:
            await self._db.close()

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
        db = self._db

        def insert(conn: sqlite3.Connection) -> tuple[int, bool]:
            cur = conn.execute(
                "INSERT INTO timeouts (workflow_name, foreign_id, run_id, status, expire_at, "
                "created_at, record_version, timeout_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    workflow_name,
                    foreign_id,
                    run_id,
                    int(status),
                    to_us(expire_at),
                    to_us(created_at),
                    record_version,
                    index,
                ),
            )
            if cur.rowcount == 1 and cur.lastrowid is not None:
                db.note_own("timeouts", 1)
                return cur.lastrowid, True
            existing = conn.execute(
                "SELECT id FROM timeouts WHERE workflow_name = ? AND run_id = ? AND status = ? "
                "AND record_version = ? AND timeout_index = ?",
                (workflow_name, run_id, int(status), record_version, index),
            ).fetchone()["id"]
            return int(existing), False

        timeout_id, inserted = await db.fast_write(insert)
        if inserted:
            db.hub.local(("timeouts", workflow_name), timeout_id)
        return timeout_id

    async def complete(self, id: int) -> None:
        def update(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE timeouts SET completed = 1 WHERE id = ?", (id,)).rowcount

        if await self._db.fast_write(update) == 0:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def cancel(self, id: int) -> None:
        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM timeouts WHERE id = ?", (id,)).rowcount

        if await self._db.fast_write(delete) == 0:
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        self._looking(workflow_name)
        return await self._select(
            f"SELECT {_COLUMNS} FROM timeouts WHERE workflow_name = ? AND completed = 0 "
            "ORDER BY id",
            (workflow_name,),
        )

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        self._looking(workflow_name)
        return await self._select(
            f"SELECT {_COLUMNS} FROM timeouts WHERE workflow_name = ? AND status = ? "
            "AND completed = 0 AND expire_at <= ? ORDER BY id",
            (workflow_name, int(status), to_us(now)),
        )

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        self._looking(workflow_name)

        def earliest(conn: sqlite3.Connection) -> int | None:
            value = conn.execute(
                "SELECT MIN(expire_at) AS earliest FROM timeouts "
                "WHERE workflow_name = ? AND status = ? AND completed = 0",
                (workflow_name, int(status)),
            ).fetchone()["earliest"]
            return None if value is None else int(value)

        value = await self._db.fast_read(earliest)
        return None if value is None else from_us(value)

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        hub = self._db.hub
        key = ("timeouts", workflow_name)
        task = asyncio.current_task()
        looked = self._looked.get(task) if task is not None else None
        since = looked.get(workflow_name) if looked is not None else None
        await hub.wait(key, hub.version(key) if since is None else since, timeout)

    def _looking(self, workflow_name: str) -> None:
        """Remember the insert key's version as this task reads (see ``wait_for_insert``)."""
        task = asyncio.current_task()
        if task is not None:
            version = self._db.hub.version(("timeouts", workflow_name))
            self._looked.setdefault(task, {})[workflow_name] = version

    async def _select(self, sql: str, params: tuple[Any, ...]) -> builtins.list[TimeoutRecord]:
        def find(conn: sqlite3.Connection) -> builtins.list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        return [_timeout(row) for row in await self._db.fast_read(find)]
