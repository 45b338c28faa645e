"""Records, their transactional outbox, failed attempts and history in SQLite."""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Self

import msgspec

from ..._capabilities import DefinitionRecord, Failure, HistoryEntry, RunPage, RunQuery
from ..._errors import RecordNotFound, VersionConflict, WorkflowError, WorkflowInProgress
from ..._event import OutboxEvent
from ..._ids import check_foreign_id, invalid_foreign_id
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from .._listing import decode_cursor, encode_cursor, key_of, page_limit
from .._rows import DecodedRow, HeaderDecoder, decode_record
from . import _definitions, _failures, _listing
from ._db import Database, from_us, to_us

__all__ = ["SQLiteRecordStore", "SQLiteRecordStoreWithoutHistory"]

_COLUMNS = (
    "workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, "
    "run_state_reason, status_description, version, trace_origin, reached"
)
_SELECT = f"SELECT {_COLUMNS} FROM records"
_INSERT = (
    f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_UPDATE = (
    "UPDATE records SET run_state = ?, status = ?, object = ?, updated_at = ?, "
    "run_state_reason = ?, status_description = ?, version = ?, trace_origin = ?, "
    "reached = ? "
    "WHERE run_id = ? AND version = ?"
)
_INSERT_OUTBOX = (
    "INSERT INTO outbox (id, workflow_name, run_id, type, headers, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# The deployment's settings (schema 5): where its events go, under one key.
_EVENT_LOCATION = "event_location"
_PIN = "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"
_PINNED = "SELECT value FROM settings WHERE key = ?"
_REPIN = (
    "INSERT INTO settings (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_encode = msgspec.json.encode
_headers = HeaderDecoder(logging.getLogger("conveyor.adapters.sqlite"))


def _record(row: sqlite3.Row) -> DecodedRow:
    """The row as a record, or as a stand-in if it does not decode (never raises)."""
    return decode_record(row, timestamp=_timestamp, statuses=_statuses)


def _timestamp(raw: object) -> datetime:
    if type(raw) is not int:
        raise TypeError(raw)
    return from_us(raw)


def _statuses(raw: object) -> tuple[int, ...]:
    if type(raw) is not str:
        raise TypeError(raw)
    return tuple(int(s) for s in raw.split(",")) if raw else ()


def _outbox_event(row: sqlite3.Row) -> OutboxEvent:
    run_id = row["run_id"]
    return OutboxEvent(
        id=row["id"],
        workflow_name=row["workflow_name"],
        run_id=run_id,
        type=row["type"],
        headers=_headers.decode(
            row["headers"],
            ("outbox", row["id"]),
            f"outbox event {row['id']!r}",
            workflow=row["workflow_name"],
            run_id=run_id,
        ),
        created_at=from_us(row["created_at"]),
    )


class _SQLiteRecordStoreBase:
    """``RecordStore`` on a SQLite file (shared by every process on the machine).

    A write is one transaction: the record (inserted only if its run ID is absent, or
    updated only if the stored version still matches), its outbox event and, unless the
    store keeps no history, its history row; or none of them.
    The schema's partial unique index keeps at most one Initiated/Running/Paused run per
    workflow and foreign ID, also against writers in other processes. ``store_many`` is
    one transaction with an outcome per write. ``wait_for_outbox`` is woken at once by
    this process's writes and within a few milliseconds by other processes' writes.

    Failed attempts are kept beside the runs (``RecordsFailures``): ``record_failure`` is
    one transaction that inserts only while the run is at the failure's version; a write
    to DataDeleted empties the run's failure messages in its transaction.

    A row that does not decode (a run state outside ``RunState``, a column of the wrong
    type: SQLite checks no types) makes ``lookup`` and ``latest`` raise ``DecodeError``
    with a stand-in and is listed as one; an outbox row whose headers do not decode is
    listed with empty headers (logged once).

    Runs are listed by keyset (``ListsRuns``), every filter served by one of the
    ``records_list_*`` indexes of schema 3. Where the deployment's events go is pinned in
    the ``settings`` table of schema 5 (``PinsEventLocation``).

    Build it on an open ``Database`` (as ``open_backend`` does) or with ``open(path)``,
    which owns its connection and closes it in ``close()``.
    """

    _keep_history: ClassVar[bool] = True

    def __init__(self, db: Database, *, owns_db: bool = False) -> None:
        self._db = db
        self._owns_db = owns_db
        # The outbox key's version when each task last listed: wait_for_outbox waits
        # only for writes after that (no wake-up lost between list and wait).
        self._listed: weakref.WeakKeyDictionary[asyncio.Task[Any], dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        # Workflow -> (outbox key version, ids) of a list that returned the whole outbox,
        # and workflow -> the version at which its outbox is known to be empty.
        self._complete: dict[str, tuple[int, frozenset[str]]] = {}
        self._emptied: dict[str, int] = {}

    @classmethod
    async def open(cls, path: str, *, create_schema: bool = True, **options: Any) -> Self:
        """A store on ``path`` with its own connection (``options`` go to ``Database``)."""
        db = Database(path, **options)
        await db.open(create_schema=create_schema)
        return cls(db, owns_db=True)

    async def close(self) -> None:
        """Close the connection if this store opened it. Idempotent."""
        if self._owns_db:
            await self._db.close()

    # ------------------------------------------------------------------ writes

    async def store(self, write: RecordWrite) -> None:
        outcomes = await self._store((write,))
        if outcomes[0] is not None:
            raise outcomes[0]

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        if not writes:
            return []
        return await self._store(writes)

    async def _store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        db = self._db
        keep_history = self._keep_history

        def apply(conn: sqlite3.Connection) -> tuple[list[WorkflowError | None], int]:
            outcomes: list[WorkflowError | None] = []
            last = 0
            for write in writes:
                outcome, seq = _apply(conn, write, keep_history)
                outcomes.append(outcome)
                last = max(last, seq)
            db.note_own("outbox", sum(o is None for o in outcomes))
            return outcomes, last

        outcomes, last = await db.fast_write(apply)
        if last:
            hub = db.hub
            for name in {
                w.record.workflow_name for w, o in zip(writes, outcomes, strict=True) if o is None
            }:
                hub.local(("outbox", name), last)
        return outcomes

    # ------------------------------------------------------------------ reads

    async def lookup(self, run_id: str) -> Record:
        def find(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                f"{_SELECT} WHERE run_id = ?", (run_id,)
            ).fetchone()
            return row

        row = await self._db.fast_read(find)
        if row is None:
            raise RecordNotFound(f"record not found: run_id={run_id}")
        return _record(row).get()

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        check_foreign_id(foreign_id)

        def find(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                f"{_SELECT} WHERE workflow_name = ? AND foreign_id = ? "
                "ORDER BY created_at DESC, seq DESC LIMIT 1",
                (workflow_name, foreign_id),
            ).fetchone()
            return row

        row = await self._db.fast_read(find)
        if row is None:
            raise RecordNotFound(
                f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
            )
        return _record(row).get()

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        if limit <= 0:
            limit = 25
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        if workflow_name:
            where.append("workflow_name = ?")
            params.append(workflow_name)
        if filter is not None:
            _filter_sql(filter, where, params)
        direction = "DESC" if order is Order.DESC else "ASC"
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at {direction}, seq {direction} LIMIT ? OFFSET ?"
        params += [limit, max(0, offset)]

        def find(conn: sqlite3.Connection) -> builtins.list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        return [_record(row).record for row in await self._db.read(find)]

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Up to ``limit`` runs of ``query`` after ``cursor`` (``ListsRuns``), read in the
        order of one of the ``records_list_*`` indexes."""
        limit = page_limit(limit)
        after = None if cursor is None else decode_cursor(cursor, query.newest_first)
        sql, params = _listing.list_sql(_SELECT, query, after, limit + 1)

        def find(conn: sqlite3.Connection) -> builtins.list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        rows = await self._db.read(find)
        records = [_record(row).record for row in rows[:limit]]
        more = len(rows) > limit
        return RunPage(
            records, encode_cursor(key_of(records[-1]), query.newest_first) if more else None
        )

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        """How many runs match ``query``, counting at most ``cap`` index entries."""
        sql, params = _listing.count_sql(query, cap)

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute(sql, params).fetchone()[0])

        return await self._db.read(count)

    # ------------------------------------------------------------------ outbox

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        key = ("outbox", workflow_name)
        version = self._db.hub.version(key)
        task = asyncio.current_task()
        if task is not None:
            self._listed.setdefault(task, {})[workflow_name] = version
        if self._emptied.get(workflow_name) == version:
            return []  # everything listed since the last write is deleted: nothing to read

        def find(conn: sqlite3.Connection) -> builtins.list[sqlite3.Row]:
            return conn.execute(
                "SELECT id, workflow_name, run_id, type, headers, created_at FROM outbox "
                "WHERE workflow_name = ? ORDER BY seq LIMIT ?",
                (workflow_name, max(0, limit)),
            ).fetchall()

        events = [_outbox_event(row) for row in await self._db.fast_read(find)]
        self._emptied.pop(workflow_name, None)
        if len(events) < limit:
            self._complete[workflow_name] = (version, frozenset(e.id for e in events))
        else:
            self._complete.pop(workflow_name, None)
        return events

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        payload = _encode(list(ids)).decode()

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", (payload,)
            )

        await self._db.fast_write(delete)
        # A workflow whose whole outbox (as last listed) is now deleted, with no write
        # since, is empty: the next list can answer without reading.
        deleted = set(ids)
        hub = self._db.hub
        for name, (version, listed) in list(self._complete.items()):
            if listed <= deleted:
                del self._complete[name]
                if hub.version(("outbox", name)) == version:
                    self._emptied[name] = version

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        hub = self._db.hub
        key = ("outbox", workflow_name)
        task = asyncio.current_task()
        listed = self._listed.get(task) if task is not None else None
        since = listed.get(workflow_name) if listed is not None else None
        await hub.wait(key, hub.version(key) if since is None else since, timeout)

    # ------------------------------------------------------------------ definitions

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        """Keep ``document`` as a new version unless the latest has ``hash``
        (``KeepsDefinitions``): one ``BEGIN IMMEDIATE`` transaction."""

        def register(conn: sqlite3.Connection) -> DefinitionRecord:
            return _definitions.register(conn, workflow_name, hash, document, at)

        return await self._db.write(register)

    async def definitions(self) -> Sequence[DefinitionRecord]:
        """The latest definition of every workflow, by workflow name."""
        return await self._db.read(_definitions.definitions)

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        """Every version of one workflow's definition, oldest first."""

        def find(conn: sqlite3.Connection) -> builtins.list[DefinitionRecord]:
            return _definitions.versions(conn, workflow_name)

        return await self._db.read(find)

    # ------------------------------------------------------------------ event location

    async def pin_event_location(self, location: str) -> str:
        """Record ``location`` unless one is recorded, and return the recorded one
        (``PinsEventLocation``): one ``BEGIN IMMEDIATE`` transaction, so of concurrent
        first pins (of any process) one is recorded."""

        def pin(conn: sqlite3.Connection) -> str:
            conn.execute(_PIN, (_EVENT_LOCATION, location))
            (pinned,) = conn.execute(_PINNED, (_EVENT_LOCATION,)).fetchone()
            return str(pinned)

        return await self._db.write(pin)

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded (``PinsEventLocation``)."""

        def repin(conn: sqlite3.Connection) -> None:
            conn.execute(_REPIN, (_EVENT_LOCATION, location))

        await self._db.write(repin)

    # ------------------------------------------------------------------ failures

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run is still at its version (``RecordsFailures``): one
        ``BEGIN IMMEDIATE`` transaction, the record untouched."""

        def record(conn: sqlite3.Connection) -> bool:
            return _failures.record_failure(conn, failure)

        return await self._db.fast_write(record)

    async def failures(self, run_id: str, version: int | None = None) -> Sequence[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""

        def find(conn: sqlite3.Connection) -> builtins.list[Failure]:
            return _failures.failures(conn, run_id, version)

        return await self._db.fast_read(find)

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        """The latest failure of each retrying run ``process`` must retry, earliest due
        first (by the ``failures_due`` index)."""

        def find(conn: sqlite3.Connection) -> builtins.list[Failure]:
            return _failures.retries_due(conn, workflow_name, process, limit)

        return await self._db.read(find)

    # ------------------------------------------------------------------ inspection

    async def outbox_count(self, workflow_name: str = "") -> int:
        """How many outbox events wait to be relayed (of one workflow, or all)."""

        def count(conn: sqlite3.Connection) -> int:
            if workflow_name:
                row = conn.execute(
                    "SELECT COUNT(*) AS n FROM outbox WHERE workflow_name = ?", (workflow_name,)
                ).fetchone()
            else:
                row = conn.execute("SELECT COUNT(*) AS n FROM outbox").fetchone()
            return int(row["n"])

        return await self._db.read(count)


def _filter_sql(f: RecordFilter, where: builtins.list[str], params: builtins.list[Any]) -> None:
    for foreign_id in f.foreign_ids:
        check_foreign_id(foreign_id)
    for column, values in (
        ("foreign_id", f.foreign_ids),
        ("status", tuple(int(s) for s in f.statuses)),
        ("run_state", tuple(int(s) for s in f.run_states)),
    ):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if f.created_after is not None:
        where.append("created_at > ?")
        params.append(to_us(f.created_after))
    if f.created_before is not None:
        where.append("created_at < ?")
        params.append(to_us(f.created_before))


def _apply(
    conn: sqlite3.Connection, write: RecordWrite, keep_history: bool
) -> tuple[WorkflowError | None, int]:
    """One compare-and-set write, its outbox event and history row (on either connection,
    inside the caller's transaction).

    Returns the outcome and the outbox event's ``seq`` (0 when the write failed).
    """
    r = write.record
    m = r.meta
    if write.expected_version == 0:
        refused = invalid_foreign_id(r.foreign_id)
        if refused is not None:
            return refused, 0
    try:
        if write.expected_version == 0:
            cur = conn.execute(
                _INSERT,
                (
                    r.workflow_name,
                    r.foreign_id,
                    r.run_id,
                    int(r.run_state),
                    int(r.status),
                    r.object,
                    to_us(r.created_at),
                    to_us(r.updated_at),
                    m.run_state_reason,
                    m.status_description,
                    m.version,
                    m.trace_origin,
                    _reached(m.reached),
                ),
            )
        else:
            cur = conn.execute(
                _UPDATE,
                (
                    int(r.run_state),
                    int(r.status),
                    r.object,
                    to_us(r.updated_at),
                    m.run_state_reason,
                    m.status_description,
                    m.version,
                    m.trace_origin,
                    _reached(m.reached),
                    r.run_id,
                    write.expected_version,
                ),
            )
    except sqlite3.IntegrityError:
        # The partial unique index: another run of the foreign ID is active. (An insert
        # whose run ID exists is a version conflict, whichever constraint fired first.)
        actual = _version_of(conn, r.run_id)
        if write.expected_version == 0 and actual is not None:
            return VersionConflict(r.run_id, 0, actual), 0
        return WorkflowInProgress(r.workflow_name, r.foreign_id), 0
    if cur.rowcount == 0:
        actual = _version_of(conn, r.run_id)
        return VersionConflict(r.run_id, write.expected_version, actual), 0
    _failures.written(conn, r, keep_history=keep_history)
    e = write.outbox
    cur = conn.execute(
        _INSERT_OUTBOX,
        (
            e.id,
            e.workflow_name,
            e.run_id,
            int(e.type),
            _encode(e.headers).decode(),
            to_us(e.created_at),
        ),
    )
    return None, cur.lastrowid or 0


def _reached(statuses: tuple[int, ...]) -> str:
    return ",".join(str(int(s)) for s in statuses)


def _version_of(conn: sqlite3.Connection, run_id: str) -> int | None:
    row = conn.execute("SELECT version FROM records WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else int(row["version"])


class SQLiteRecordStore(_SQLiteRecordStoreBase):
    """The SQLite record store (see ``_SQLiteRecordStoreBase``' docstring, shown by
    ``help``) that also keeps every version's status, run state and reason
    (``KeepsHistory``): each write adds its history row in its own transaction."""

    _keep_history: ClassVar[bool] = True

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every applied write of the run, oldest first, with its version's failures."""

        def find(conn: sqlite3.Connection) -> builtins.list[HistoryEntry]:
            return _failures.history(conn, run_id)

        return await self._db.read(find)


class SQLiteRecordStoreWithoutHistory(_SQLiteRecordStoreBase):
    """``SQLiteRecordStore`` without history (``history=false``): writes add no history
    row, and the store does not claim ``KeepsHistory``. Failures are still recorded."""

    _keep_history: ClassVar[bool] = False
