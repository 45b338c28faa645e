"""``RecordWrites``: a batch of record writes as one transaction, an outcome per write.

A batch is first written in one round trip, assuming every write applies (as nearly all
do): ``BEGIN``, the record statements, the history rows, the events and ``COMMIT`` go to
the server as one multi-statement query. Its writes are cut into groups of consecutive
new runs and of consecutive updates of distinct runs (a run moved twice in one batch
starts a new group, so its second write sees its first); each group is one statement:

- new runs (``expected_version == 0``): one multi-row ``INSERT``; a unique index that
  refuses a row (the run ID exists, or the foreign ID has an active run) fails it;
- updates: one ``UPDATE ... WHERE run_id IN (...) AND version = <expected>`` (values by
  ``CASE run_id``; for one write, plain), whose changed-row count must be the group's
  size (a matching row always changes: its version moves). The statement after it fails
  the query when it is not: ``SELECT (SELECT 1 UNION ALL SELECT 2 FROM DUAL WHERE
  ROW_COUNT() <> n)`` raises "Subquery returns more than 1 row" (1242);

then one multi-row ``REPLACE`` of their history rows (unless the store keeps none), one
``UPDATE`` that empties the failure messages of the runs moved to DataDeleted, and the
events (below). A statement that fails stops the query before its ``COMMIT``, so a
batch in which some write does not apply is rolled back and written again the careful
way: statement by statement, an outcome per write:

- new runs: the multi-row ``INSERT``; if a unique index refuses one of its rows, InnoDB
  rolls back that statement alone and the group is inserted again row by row, each
  with its own outcome (the run ID exists: ``VersionConflict``; the foreign ID has an
  active run, ``records_one_active_run``: ``WorkflowInProgress``);
- updates: a locking read (``FOR UPDATE``, in run ID order) of the runs' versions is
  the compare: a write whose run is not at its expected version is a ``VersionConflict``
  with the version found; the others are locked at that version, so one multi-row
  ``UPDATE`` applies to each of them. If the active-run index refuses it (a finished run
  revived while another run of its foreign ID is active), it is rolled back and the
  group written row by row;
- a group of one write, and each row of a group written row by row, is one statement:
  ``INSERT``, or ``UPDATE ... WHERE run_id = ? AND version = ?`` whose row count says
  whether the compare-and-set held; when it is 0, a locking read tells a conflict (with
  the version found) from a write that changed nothing (MySQL counts changed rows, not
  matched ones), which is written again under the lock;

then the history rows, the scrub and the events of the writes that applied. Either all
of a transaction commits, or none of it.

Events, in batch order: outbox rows (one multi-row ``INSERT``), or, built with
``events=streamer``, appended to the streamer's log itself, topic after topic in sorted
topic order (so two batches never wait for each other's topic rows): the careful way
through ``MySQLEventStreamer.send_in``; in one round trip with the same gap-free IDs
(the topic's counter row, taken by ``INSERT ... ON DUPLICATE KEY UPDATE last_id =
LAST_INSERT_ID(last_id + n)`` and locked until the commit) and the events' IDs computed
from ``LAST_INSERT_ID()`` in the ``INSERT`` that follows. The events come last, so a
topic's row is locked for as short a time as possible: in the one-query way, only while
the server runs the rest of the query.

A deadlock or lock wait timeout (the server rolled the transaction back) runs the whole
batch again; the outcomes are those of the attempt that committed. Updates lock their
runs in run ID order (the ``run_id`` index), so two batches that update the same runs in
one group each wait for each other instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol, TypeVar, cast

import msgspec

from ..._errors import AdapterError, VersionConflict, WorkflowError, WorkflowInProgress
from ..._event import Event
from ..._protocols import OutgoingEvent, RecordWrite
from ..._runstate import RunState
from ._database import Connection, Cursor, Database
from ._errors import DEADLOCK, DUPLICATE_KEY, LOCK_WAIT_TIMEOUT, error_code
from ._rows import COLUMNS, name, reached_text, to_db
from ._streamer import Appended, MySQLEventStreamer
from ._streamer import _dedupe as dedupe  # the identity send_in gives an engine event

__all__ = ["RecordWrites"]

T = TypeVar("T")
Outcome = WorkflowError | None
Statement = tuple[str, list[object]]

log = logging.getLogger("conveyor.adapters.mysql")

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
_QUERY_BYTES: Final = 4 << 20
"""The most bytes of values one multi-statement query carries (a longer batch takes a
round trip per this many)."""
_SUBQUERY_ROWS: Final = 1242
""""Subquery returns more than 1 row": the guard after an update that changed fewer rows
than it writes."""
_GUARD: Final = "SELECT (SELECT 1 UNION ALL SELECT 2 FROM DUAL WHERE ROW_COUNT() <> %s)"
_WRITE_ATTEMPTS: Final = 5
_TRANSIENT: Final = (DEADLOCK, LOCK_WAIT_TIMEOUT)


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


def _rows_in(head: str, rows: Sequence[tuple[object, ...]]) -> list[Statement]:
    """``head`` (``INSERT INTO t (...) VALUES ``) for ``rows``, a statement per chunk."""
    statements: list[Statement] = []
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        one = _placeholders(len(chunk[0]))
        statements.append((head + ", ".join([one] * len(chunk)), [v for row in chunk for v in row]))
    return statements


def _by_topic(applied: Sequence[RecordWrite]) -> dict[str, list[OutgoingEvent]]:
    """The writes' events as the outbox relay would send them (foreign ID = run ID, the
    outbox event's type and headers), by topic, in batch order."""
    by_topic: dict[str, list[OutgoingEvent]] = {}
    for write in applied:
        o = write.outbox
        by_topic.setdefault(o.topic, []).append(OutgoingEvent(o.run_id, int(o.type), o.headers))
    return by_topic


def _bytes(statement: Statement) -> int:
    """About how many bytes ``statement`` takes in a query."""
    sql, args = statement
    return len(sql) + sum(len(a) if isinstance(a, bytes | str) else 8 for a in args)


_Unit = tuple[list[Statement], int]
"""Statements that go in one query (an update and its guard), and about how many bytes."""


class _Results(Cursor, Protocol):
    """What ``_commit`` uses of asyncmy's cursor beyond ``Cursor``: the results of a
    multi-statement query, one after another."""

    @property
    def rowcount(self) -> int: ...

    async def nextset(self) -> bool | None: ...


async def _commit(cur: _Results, units: Sequence[_Unit]) -> list[tuple[int, int]]:
    """``BEGIN``, every statement of ``units`` and ``COMMIT`` as multi-statement queries of
    about ``_QUERY_BYTES`` at most each (a unit is never split); the changed-row count and
    insert ID of each statement, in order. Raises the driver's error of the first
    statement that fails (the server runs none after it: the transaction stays open)."""
    queries: list[list[Statement]] = [[("BEGIN", [])]]
    size = 0
    for statements, more in units:
        if size and size + more > _QUERY_BYTES:
            queries.append([])
            size = 0
        queries[-1] += statements
        size += more
    queries[-1].append(("COMMIT", []))
    results: list[tuple[int, int]] = []
    for query in queries:
        await cur.execute(
            "; ".join(sql for sql, _ in query), [a for _, args in query for a in args]
        )
        results.append((cur.rowcount, cur.lastrowid))
        while await cur.nextset():
            results.append((cur.rowcount, cur.lastrowid))
    return results[1:-1]  # not BEGIN's, nor COMMIT's


async def _roll_back(conn: Connection) -> None:
    """Roll back what a failed query left open (best effort: the connection of a query
    that failed in transit is closed anyway)."""
    if conn.connected and conn.get_transaction_status():
        try:
            await asyncio.shield(conn.rollback())
        except Exception:
            log.debug("rollback failed", exc_info=True)


@dataclass(slots=True)
class _Append:
    """One topic's events of a batch, and the two statements that append them."""

    topic: str
    events: list[OutgoingEvent]
    at: datetime
    take: Statement
    insert: Statement


class RecordWrites:
    """The write statements of one installation (see the module docstring)."""

    def __init__(
        self, db: Database, *, history: bool, events: MySQLEventStreamer | None = None
    ) -> None:
        self._db = db
        self._events = events
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
        self._take = (
            f"INSERT INTO {t.topics} (topic, last_id) VALUES (%s, LAST_INSERT_ID(%s)) "
            "ON DUPLICATE KEY UPDATE last_id = LAST_INSERT_ID(last_id + %s)"
        )
        self._append_events = (
            f"INSERT INTO {t.events} (topic, id, foreign_id, type, headers, created_at, dedupe) "
            "VALUES "
        )
        self._appended_ids = (
            f"SELECT id FROM {t.events} WHERE topic = %s AND id > %s AND id <= %s ORDER BY id"
        )

    async def store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """Apply ``writes`` in one transaction; the outcome of each, in order. Raises
        ``AdapterError`` if the transaction failed (then none of it applied)."""
        written = await self._retrying(lambda conn: self._at_once(conn, writes))
        if written is None:  # not every write applies: the careful way
            written = await self._db.transaction(
                "storing records", lambda cur: self._one_by_one(cur, writes)
            )
        outcomes, appended = written
        if self._events is not None:
            for each in appended:
                self._events.appended(each)
        else:
            applied = zip(writes, outcomes, strict=True)
            for workflow in {w.record.workflow_name for w, o in applied if o is None}:
                self._db.signal(outbox_signal(workflow)).fire()
        return outcomes

    # ------------------------------------------------------------------ in one query

    async def _retrying(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection, run again (up to five times in all) after a
        deadlock or lock wait timeout, as ``Database.transaction`` does."""
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return await self._db.run("storing records", work)
            except AdapterError as exc:
                code = error_code(exc.__cause__) if exc.__cause__ is not None else None
                if code in _TRANSIENT and attempt < _WRITE_ATTEMPTS - 1:
                    await asyncio.sleep(0.002 * 2**attempt)  # let the other transaction go
                    continue
                raise
        raise AssertionError("unreachable")

    async def _at_once(
        self, conn: Connection, writes: Sequence[RecordWrite]
    ) -> tuple[list[Outcome], list[Appended]] | None:
        """The whole batch as one transaction in one round trip (or a few, for a large
        one), assuming every write applies; ``None`` (rolled back) if one does not."""
        units: list[_Unit] = []
        for group in _groups(writes):
            size = sum(_size(w) for w in group)
            if group[0].expected_version == 0:
                units.append(([self._insert_statement(group)], size))
            else:
                units.append(([self._update_statement(group), (_GUARD, [len(group)])], size))
        units += [([st], _bytes(st)) for st in self._tail(writes)]
        appends = self._appends(writes) if self._events is not None else []
        units += [([a.take, a.insert], _bytes(a.insert)) for a in appends]
        async with conn.cursor() as cur:
            try:
                results = await _commit(cast(_Results, cur), units)
            except Exception as exc:
                if error_code(exc) in (DUPLICATE_KEY, _SUBQUERY_ROWS):
                    # A write that does not apply (its statement alone was undone).
                    await asyncio.shield(conn.rollback())
                    return None
                await _roll_back(conn)
                raise
            except BaseException:
                await _roll_back(conn)
                raise
        # Each append's two statements are at the end, in order.
        ends = results[len(results) - 2 * len(appends) :]
        appended = [
            await self._appended(a, last=ends[2 * i][1], inserted=ends[2 * i + 1][0])
            for i, a in enumerate(appends)
        ]
        return [None] * len(writes), appended

    def _insert_statement(self, group: Sequence[RecordWrite]) -> Statement:
        rows = [_values(w) for w in group]
        return (
            self._insert_many + ", ".join([_placeholders(len(COLUMNS))] * len(rows)),
            [row[c] for row in rows for c in COLUMNS],
        )

    def _update_statement(self, group: Sequence[RecordWrite]) -> Statement:
        """The compare-and-set ``UPDATE`` of distinct runs, each at its expected version."""
        if len(group) == 1:
            (w,) = group
            values = _values(w)
            return (
                self._update,
                [*(values[c] for c in _UPDATED), w.record.run_id, w.expected_version],
            )
        rows = [_values(w) for w in group]
        whens = " ".join(["WHEN %s THEN %s"] * len(group))
        cases = ", ".join(f"{c} = CASE run_id {whens} END" for c in _UPDATED)
        args: list[object] = [x for c in _UPDATED for v in rows for x in (v["run_id"], v[c])]
        ids = [w.record.run_id for w in group]
        args += ids
        args += [x for w in group for x in (w.record.run_id, w.expected_version)]
        return (
            f"{self._update_many} {cases} WHERE run_id IN {_placeholders(len(ids))} "
            f"AND version = CASE run_id {whens} END",
            args,
        )

    def _appends(self, applied: Sequence[RecordWrite]) -> list[_Append]:
        """The statements that append the writes' events (``MySQLEventStreamer.send_in``'s,
        for one query): per topic in sorted order, take the next IDs from its counter row
        (made if new; its insert ID is the topic's new last ID), then insert the events
        with IDs counted back from ``LAST_INSERT_ID()``."""
        now = datetime.now(UTC)
        stamp = now.replace(tzinfo=None)
        appends = []
        for topic, events in sorted(_by_topic(applied).items()):
            n = len(events)
            args: list[object] = []
            for i, e in enumerate(events, 1):
                args += (topic, n - i, e.foreign_id, int(e.type), _encode(dict(e.headers)))
                args += (stamp, dedupe(e.headers))
            rows = ", ".join(["(%s, LAST_INSERT_ID() - %s, %s, %s, %s, %s, %s)"] * n)
            take = (self._take, [topic, n, n])
            insert = (self._append_events + rows + " ON DUPLICATE KEY UPDATE id = id", args)
            appends.append(_Append(topic, events, now, take, insert))
        return appends

    async def _appended(self, a: _Append, *, last: int, inserted: int) -> Appended:
        """What ``a`` appended once committed: IDs ``last - n + 1`` to ``last``, without the
        copies of events already in the log that the unique index dropped (looked up)."""
        n = len(a.events)
        base = last - n
        kept = [
            Event(base + i, e.foreign_id, int(e.type), dict(e.headers), a.at)
            for i, e in enumerate(a.events, 1)
        ]
        if inserted < n:
            rows = await self._db.fetch(
                "reading appended events", self._appended_ids, [a.topic, base, last]
            )
            ids = {int(row[0]) for row in rows}
            kept = [e for e in kept if e.id in ids]
        return Appended(a.topic, base, last, kept)

    # ------------------------------------------------------------------ one by one

    def _tail(self, applied: Sequence[RecordWrite]) -> list[Statement]:
        """What follows the record statements: history rows, the scrub of the messages
        of runs moved to DataDeleted, and (without a streamer) the outbox rows."""
        statements: list[Statement] = []
        if self._history:
            statements += _rows_in(self._history, [_history_row(w) for w in applied])
        deleted = sorted(
            {w.record.run_id for w in applied if w.record.run_state is RunState.DATA_DELETED}
        )
        if deleted:
            statements.append((self._scrub + _placeholders(len(deleted)), list(deleted)))
        if self._events is None:
            statements += _rows_in(self._outbox, [_outbox_row(w) for w in applied])
        return statements

    async def _one_by_one(
        self, cur: Cursor, writes: Sequence[RecordWrite]
    ) -> tuple[list[Outcome], list[Appended]]:
        """The careful way (module docstring), in ``Database.transaction``."""
        outcomes: list[Outcome] = []
        for group in _groups(writes):
            if len(group) == 1:
                outcomes.append(await self._apply(cur, group[0]))
            elif group[0].expected_version == 0:
                outcomes += await self._insert_group(cur, group)
            else:
                outcomes += await self._update_group(cur, group)
        applied = [w for w, o in zip(writes, outcomes, strict=True) if o is None]
        if not applied:
            return outcomes, []
        for sql, args in self._tail(applied):
            await cur.execute(sql, args)
        if self._events is None:
            return outcomes, []
        events = self._events
        by_topic = _by_topic(applied)
        return outcomes, [await events.send_in(cur, t, by_topic[t]) for t in sorted(by_topic)]

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


def outbox_signal(workflow_name: str) -> str:
    """The name of the in-process signal fired after a write adds to ``workflow_name``'s
    outbox."""
    return f"outbox:{workflow_name}"
