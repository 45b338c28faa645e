"""``RecordWrites``: a batch of record writes as one transaction, an outcome per write.

The transaction applies the writes in batch order, cut into groups of consecutive new
runs and of consecutive updates of distinct runs (a run moved twice in one batch starts
a new group, so its second write sees its first):

- new runs (``expected_version == 0``): one multi-row ``INSERT``. InnoDB rolls back only
  the statement that fails, so if a unique index refuses one of its rows (the run ID
  exists: ``VersionConflict``; the foreign ID has an active run,
  ``records_one_active_run``: ``WorkflowInProgress``), the group is inserted again row
  by row, each with its own outcome;
- updates: a locking read (``FOR UPDATE``, in run ID order) of the runs' versions is
  the compare: a write whose run is not at its expected version is a ``VersionConflict``
  with the version found; the others are locked at that version, so one multi-row
  ``UPDATE`` (``CASE run_id``) applies to each of them. If the active-run index refuses
  it (a finished run revived while another run of its foreign ID is active), it is
  rolled back and the group written row by row;
- a group of one write, and each row of a group written row by row, is one statement:
  ``INSERT``, or ``UPDATE ... WHERE run_id = ? AND version = ?`` whose row count says
  whether the compare-and-set held; when it is 0, a locking read tells a conflict (with
  the version found) from a write that changed nothing (MySQL counts changed rows, not
  matched ones), which is written again under the lock.

Then one multi-row ``INSERT`` adds the outbox rows of every write that applied, in batch
order, one adds their history rows (``REPLACE``, unless the store keeps none), and one
empties the failure messages of the runs moved to DataDeleted; ``COMMIT``. Either all of
that commits, or none of it.

A deadlock or lock wait timeout (the server rolled the transaction back) runs the whole
batch again (``Database.transaction``); the outcomes are those of the attempt that
committed. A group's locking read takes its runs in run ID order, so two batches that
update the same runs in one group each wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from ..._errors import VersionConflict, WorkflowError, WorkflowInProgress
from ..._protocols import RecordWrite
from ..._runstate import RunState
from ._database import Cursor, Database
from ._errors import DUPLICATE_KEY, error_code
from ._rows import COLUMNS, name, reached_text, to_db

__all__ = ["RecordWrites"]

_encode = msgspec.json.encode
_CHUNK: Final = 500
"""Rows per multi-row statement (well within ``max_allowed_packet``)."""
_GROUP_BYTES: Final = 4 << 20
"""The most bytes of objects one multi-row statement carries (``max_allowed_packet``
is 16 MiB by default on MariaDB, 64 MiB on MySQL 8)."""
_UPDATED: Final = (
    "run_state",
    "status",
    "object",
    "updated_at",
    "version",
    "run_state_reason",
    "status_description",
    "trace_origin",
    "reached",
)
_OUTBOX: Final = ("id", "workflow_name", "run_id", "type", "headers", "created_at")
_HISTORY: Final = ("run_id", "version", "status", "run_state", "reason", "at")


def _values(write: RecordWrite) -> dict[str, object]:
    r = write.record
    m = r.meta
    return {
        "workflow_name": r.workflow_name,
        "foreign_id": r.foreign_id,
        "run_id": r.run_id,
        "run_state": int(r.run_state),
        "status": int(r.status),
        "object": r.object,
        "created_at": to_db(r.created_at),
        "updated_at": to_db(r.updated_at),
        "version": m.version,
        "run_state_reason": m.run_state_reason,
        "status_description": m.status_description,
        "trace_origin": m.trace_origin,
        "reached": reached_text(m.reached),
    }


def _outbox_row(write: RecordWrite) -> tuple[object, ...]:
    e = write.outbox
    headers = _encode(dict(e.headers))
    return (e.id, e.workflow_name, e.run_id, int(e.type), headers, to_db(e.created_at))


def _history_row(write: RecordWrite) -> tuple[object, ...]:
    r = write.record
    return (
        r.run_id,
        r.meta.version,
        int(r.status),
        int(r.run_state),
        r.meta.run_state_reason,
        to_db(r.updated_at),
    )


def _size(write: RecordWrite) -> int:
    """Roughly how many bytes a write adds to a statement (its object, mostly)."""
    return len(write.record.object) + 512


def _groups(writes: Sequence[RecordWrite]) -> list[list[RecordWrite]]:
    """``writes`` cut into runs of consecutive inserts, or of consecutive updates of
    distinct runs (a run moved twice must see its first move), each bounded in rows and
    bytes, in batch order."""
    groups: list[list[RecordWrite]] = []
    group: list[RecordWrite] = []
    run_ids: set[str] = set()
    size = 0
    for write in writes:
        new = write.expected_version == 0
        if group and (
            (group[0].expected_version == 0) != new
            or (not new and write.record.run_id in run_ids)
            or len(group) >= _CHUNK
            or size + _size(write) > _GROUP_BYTES
        ):
            groups.append(group)
            group, run_ids, size = [], set(), 0
        group.append(write)
        run_ids.add(write.record.run_id)
        size += _size(write)
    if group:
        groups.append(group)
    return groups


def _placeholders(count: int) -> str:
    return "(" + ", ".join(["%s"] * count) + ")"


class RecordWrites:
    """The write statements of one installation (see the module docstring)."""

    def __init__(self, db: Database, *, history: bool) -> None:
        self._db = db
        t = db.tables
        self._insert = (
            f"INSERT INTO {t.records} ({', '.join(COLUMNS)}) VALUES {_placeholders(len(COLUMNS))}"
        )
        sets = ", ".join(f"{c} = %s" for c in _UPDATED)
        self._update = f"UPDATE {t.records} SET {sets} WHERE run_id = %s AND version = %s"
        self._insert_many = f"INSERT INTO {t.records} ({', '.join(COLUMNS)}) VALUES "
        self._update_many = f"UPDATE {t.records} SET"
        self._locked_versions = f"SELECT run_id, version FROM {t.records} WHERE run_id IN "
        self._version = f"SELECT version FROM {t.records} WHERE run_id = %s"
        self._locked_version = self._version + " FOR UPDATE"
        self._outbox = f"INSERT INTO {t.outbox} ({', '.join(_OUTBOX)}) VALUES "
        # REPLACE: a version's row is the last write of it (as PostgreSQL's upsert).
        self._history = (
            f"REPLACE INTO {t.history} ({', '.join(_HISTORY)}) VALUES " if history else ""
        )
        self._scrub = f"UPDATE {t.failures} SET message = '' WHERE message <> '' AND run_id IN "

    async def store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """Apply ``writes`` in one transaction; the outcome of each, in order. Raises
        ``AdapterError`` if the transaction failed (then none of it applied)."""

        async def work(cur: Cursor) -> list[WorkflowError | None]:
            outcomes: list[WorkflowError | None] = []
            for group in _groups(writes):
                if len(group) == 1:
                    outcomes.append(await self._apply(cur, group[0]))
                elif group[0].expected_version == 0:
                    outcomes += await self._insert_group(cur, group)
                else:
                    outcomes += await self._update_group(cur, group)
            applied = [w for w, o in zip(writes, outcomes, strict=True) if o is None]
            if applied:
                await self._add(cur, self._outbox, [_outbox_row(w) for w in applied])
                if self._history:
                    rows = [_history_row(w) for w in applied]
                    await self._add(cur, self._history, rows)
                deleted = sorted(
                    {
                        w.record.run_id
                        for w in applied
                        if w.record.run_state is RunState.DATA_DELETED
                    }
                )
                if deleted:
                    await cur.execute(self._scrub + _placeholders(len(deleted)), deleted)
            return outcomes

        outcomes = await self._db.transaction("storing records", work)
        written = zip(writes, outcomes, strict=True)
        for workflow in {w.record.workflow_name for w, o in written if o is None}:
            self._db.signal(outbox_signal(workflow)).fire()
        return outcomes

    async def _insert_group(
        self, cur: Cursor, group: Sequence[RecordWrite]
    ) -> list[WorkflowError | None]:
        """New runs as one multi-row ``INSERT``; if a unique index refuses one of them,
        the statement is rolled back whole and each is inserted on its own."""
        rows = [_values(w) for w in group]
        try:
            await cur.execute(
                self._insert_many + ", ".join([_placeholders(len(COLUMNS))] * len(rows)),
                [row[c] for row in rows for c in COLUMNS],
            )
        except Exception as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            return [await self._apply(cur, w) for w in group]
        return [None] * len(group)

    async def _update_group(
        self, cur: Cursor, group: Sequence[RecordWrite]
    ) -> list[WorkflowError | None]:
        """Compare-and-set updates of distinct runs: a locking read of their versions,
        then one ``UPDATE`` of those at the expected version (locked, so it applies to
        each); if the active-run index refuses it, the statement is rolled back whole and
        each is written on its own."""
        run_ids = [w.record.run_id for w in group]
        await cur.execute(
            self._locked_versions + _placeholders(len(run_ids)) + " FOR UPDATE", run_ids
        )
        stored = {str(name(run_id)): int(version) for run_id, version in await cur.fetchall()}
        outcomes: list[WorkflowError | None] = [
            None
            if stored.get(w.record.run_id) == w.expected_version
            else VersionConflict(w.record.run_id, w.expected_version, stored.get(w.record.run_id))
            for w in group
        ]
        matching = [w for w, o in zip(group, outcomes, strict=True) if o is None]
        if not matching:
            return outcomes
        if len(matching) == 1:
            return [
                await self._apply(cur, w) if o is None else o
                for w, o in zip(group, outcomes, strict=True)
            ]
        values = [_values(w) for w in matching]
        cases = ", ".join(
            f"{c} = CASE run_id {' '.join(['WHEN %s THEN %s'] * len(matching))} END"
            for c in _UPDATED
        )
        args: list[object] = [x for c in _UPDATED for v in values for x in (v["run_id"], v[c])]
        ids = [w.record.run_id for w in matching]
        try:
            await cur.execute(
                f"{self._update_many} {cases} WHERE run_id IN {_placeholders(len(ids))}",
                [*args, *ids],
            )
        except Exception as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            return [
                await self._apply(cur, w) if o is None else o
                for w, o in zip(group, outcomes, strict=True)
            ]
        return outcomes

    async def _apply(self, cur: Cursor, write: RecordWrite) -> WorkflowError | None:
        """One write's record statement: ``None`` if it applied, else why not."""
        record = write.record
        values = _values(write)
        if write.expected_version == 0:
            try:
                await cur.execute(self._insert, [values[c] for c in COLUMNS])
            except Exception as exc:
                if error_code(exc) != DUPLICATE_KEY:
                    raise
                # The statement alone was rolled back. An insert whose run ID exists is
                # a version conflict, whichever unique index refused it first.
                await cur.execute(self._version, [record.run_id])
                found = await cur.fetchone()
                if found is not None:
                    return VersionConflict(record.run_id, 0, int(found[0]))
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
            return None
        args = [*(values[c] for c in _UPDATED), record.run_id, write.expected_version]
        changed = await self._update_once(cur, args)
        if changed is not True:
            if changed is False:
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
            await cur.execute(self._locked_version, [record.run_id])
            found = await cur.fetchone()
            stored = None if found is None else int(found[0])
            if stored != write.expected_version:
                return VersionConflict(record.run_id, write.expected_version, stored)
            # The row matches and is locked now: the update changed nothing (the same
            # values), or the run reached the expected version just after it. Again:
            if await self._update_once(cur, args) is False:
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
        return None

    async def _update_once(self, cur: Cursor, args: list[object]) -> bool | None:
        """The compare-and-set ``UPDATE``: ``True`` if it changed the row, ``None`` if it
        changed none, ``False`` if it would make a second active run of the foreign ID
        (refused by ``records_one_active_run``: reviving a finished run)."""
        try:
            changed = await cur.execute(self._update, args)
        except Exception as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            return False
        return True if changed else None

    @staticmethod
    async def _add(cur: Cursor, head: str, rows: Sequence[tuple[object, ...]]) -> None:
        """``head`` (``INSERT INTO t (...) VALUES ``) for ``rows``, a chunk at a time."""
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            one = _placeholders(len(chunk[0]))
            args = [value for row in chunk for value in row]
            await cur.execute(head + ", ".join([one] * len(chunk)), args)


def outbox_signal(workflow_name: str) -> str:
    """The name of the in-process signal fired after a write adds to ``workflow_name``'s
    outbox."""
    return f"outbox:{workflow_name}"
